package main

import (
	"math"
	"strings"
	"testing"
)

// A first write that costs a linear write, a chunk copy (a read and a
// write) and a metadata write: with reads and writes at 1000 IOPS that is
// four requests, 250 IOPS.
func TestFirstWriteBound(t *testing.T) {
	linear := func(job string) result { return result{iops: 1000} }
	if got := firstWriteBound(linear); math.Abs(got-250) > 1e-9 {
		t.Fatalf("firstWriteBound = %v, want 250", got)
	}
	if got := firstWriteBound(func(string) result { return result{} }); got != 0 {
		t.Fatalf("with no linear rounds: %v, want 0", got)
	}
}

// Each snapshot goal line holds its row's rounds against the bound from
// linear's rows of the same round.
func TestSnapGoals(t *testing.T) {
	runs := map[string][]result{
		jobRandRead + "|gdm":               {{iops: 1000}, {iops: 2000}},
		jobRandWrite + "|gdm":              {{iops: 1000}, {iops: 2000}},
		jobRandRead + "|gdm-snap":          {{iops: 900}, {iops: 1600}},  // -10%, -20%
		jobRandWrite + "|gdm-snap-origin":  {{iops: 300}, {iops: 400}},   // bounds 250, 500
		jobRandWrite + "|gdm-snap-rewrite": {{iops: 1000}, {iops: 2000}}, // at linear
	}
	var b strings.Builder
	snapGoals(&b, runs, []string{"gdm", "gdm-snap", "gdm-snap-origin", "gdm-snap-rewrite"})
	out := b.String()
	for _, want := range []string{
		"| reads of unchanged chunks | gdm-snap | 4k randread qd32 | 1250 | 1275 (linear -15%) | not met (1 of 2 rounds) |",
		"| first writes (each a chunk copy) | gdm-snap-origin | 4k randwrite qd32 | 350 | 375 (1/(1/R + 3/W)) | not met (1 of 2 rounds) |",
		"| rewrites | gdm-snap-rewrite | 4k randwrite qd32 | 1500 | 1275 (linear -15%) | met (2 of 2 rounds) |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the snapshot goals lack\n%s\nin\n%s", want, out)
		}
	}
	if strings.Contains(out, "1M seqwrite") {
		t.Errorf("a goal line for a job that did not run:\n%s", out)
	}
}
