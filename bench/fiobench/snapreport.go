package main

import (
	"fmt"
	"io"
	"slices"
)

// Issue 18's goal for the snapshot rows (snap.go): rewrites and reads of
// unchanged chunks within snapSlack percent of linear's IOPS; first
// writes at no less than firstWriteBound of the same round's linear rows.
const snapSlack = 15

// The jobs the snapshot goals read.
const (
	jobRandRead  = "4k randread qd32"
	jobRandWrite = "4k randwrite qd32"
	jobSeqWrite  = "1M seqwrite qd8"
)

// snapGoal is one line of the snapshot goals: what is measured, on which
// row and job, and the IOPS of the same round it is held to.
type snapGoal struct {
	what, row, job string
	bound          func(linear func(job string) result) float64
	// boundText says what the bound is.
	boundText string
}

// firstWriteBound is the IOPS a first write reaches if it costs a linear
// write plus one chunk copy (a read and a write of 4 KiB) plus one
// metadata write (4 KiB): 1/(1/R + 3/W) with R and W linear's 4k random
// read and write IOPS. Every term is a whole NBD request of linear's, so
// the bound is generous: the copy and the metadata write are done inside
// gdm, without a request's round trip.
func firstWriteBound(linear func(job string) result) float64 {
	r, w := linear(jobRandRead).iops, linear(jobRandWrite).iops
	if r == 0 || w == 0 {
		return 0
	}
	return 1 / (1/r + 3/w)
}

// sameJob is a bound of snapSlack percent below linear's IOPS in job.
func sameJob(job string) func(func(string) result) float64 {
	return func(linear func(string) result) float64 { return linear(job).iops * (1 - snapSlack/100.0) }
}

var snapGoalLines = []snapGoal{
	{"reads of unchanged chunks", "gdm-snap", jobRandRead, sameJob(jobRandRead), "linear -15%"},
	{"rewrites", "gdm-snap-rewrite", jobRandWrite, sameJob(jobRandWrite), "linear -15%"},
	{"rewrites", "gdm-snap-rewrite", jobSeqWrite, sameJob(jobSeqWrite), "linear -15%"},
	{"first writes (each a chunk copy)", "gdm-snap-origin", jobRandWrite, firstWriteBound, "1/(1/R + 3/W)"},
	{"first writes (new exceptions, no copy)", "gdm-snap", jobRandWrite, firstWriteBound, "1/(1/R + 3/W)"},
}

// snapGoals prints, per goal line, the row's median IOPS, the bound's
// median, and the rounds in which the row reached the bound of its round.
func snapGoals(w io.Writer, runs map[string][]result, servers []string) {
	if !slices.Contains(servers, "gdm") {
		return
	}
	var lines []snapGoal
	for _, g := range snapGoalLines {
		if slices.Contains(servers, g.row) && len(runs[g.job+"|"+g.row]) > 0 {
			lines = append(lines, g)
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "\nSnapshots (issue 18): rewrites and reads of unchanged chunks within %d%% of linear's IOPS; first writes at least 1/(1/R + 3/W), R and W linear's 4k random read and write IOPS of the same round (a write plus one chunk copy, a read and a write, plus one metadata write).\n\n", snapSlack)
	fmt.Fprintln(w, "| what | row | job | IOPS | bound | verdict |")
	fmt.Fprintln(w, "| --- | --- | --- | ---: | ---: | --- |")
	for _, g := range lines {
		rs := runs[g.job+"|"+g.row]
		var got, bound []float64
		held := 0
		for i, r := range rs {
			b := g.bound(func(job string) result { return roundOf(runs[job+"|gdm"], i) })
			if r.iops == 0 || b == 0 {
				continue
			}
			got, bound = append(got, r.iops), append(bound, b)
			if r.iops >= b {
				held++
			}
		}
		if len(got) == 0 {
			fmt.Fprintf(w, "| %s | %s | %s | | | no rounds to compare |\n", g.what, g.row, g.job)
			continue
		}
		slices.Sort(got)
		slices.Sort(bound)
		v := "not met"
		if mid(got) >= mid(bound) {
			v = "met"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.0f (%s) | %s (%d of %d rounds) |\n", g.what, g.row, g.job, mid(got), mid(bound), g.boundText, v, held, len(got))
	}
}

// roundOf is round i of rs, or the zero result.
func roundOf(rs []result, i int) result {
	if i < len(rs) {
		return rs[i]
	}
	return result{}
}
