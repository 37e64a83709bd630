package main

import (
	"strings"
	"testing"
)

func TestMeets(t *testing.T) {
	for _, c := range []struct {
		dIOPS, dCPU float64
		want        bool
	}{
		{0, 50, true},      // at the best peer's IOPS, whatever the CPU
		{12, 0, true},      // above it
		{-0.1, 0, false},   // just below, at the same CPU
		{-3, -20, true},    // within 3% at 20% less CPU
		{-3.1, -40, false}, // more than 3% behind
		{-2, -19.9, false}, // within 3%, but not 20% less CPU
		{-1, -25, true},    // within 3%, 25% less CPU
	} {
		if got := meets(c.dIOPS, c.dCPU); got != c.want {
			t.Errorf("meets(%v, %v) = %v, want %v", c.dIOPS, c.dCPU, got, c.want)
		}
	}
}

func TestVerdict(t *testing.T) {
	best := []result{{iops: 100, cpuPerGiB: 1}, {iops: 100, cpuPerGiB: 1}, {iops: 100, cpuPerGiB: 1}}
	for _, c := range []struct {
		name string
		gdm  []result
		want string
	}{
		{"ahead every round", []result{{iops: 101, cpuPerGiB: 2}, {iops: 110, cpuPerGiB: 2}, {iops: 100, cpuPerGiB: 2}}, "met (3 of 3 rounds)"},
		{"median round ahead", []result{{iops: 90, cpuPerGiB: 1}, {iops: 101, cpuPerGiB: 1}, {iops: 105, cpuPerGiB: 1}}, "met (2 of 3 rounds)"},
		{"close at less CPU", []result{{iops: 98, cpuPerGiB: 0.7}, {iops: 97.5, cpuPerGiB: 0.78}, {iops: 99, cpuPerGiB: 0.75}}, "met (3 of 3 rounds)"},
		{"close at too much CPU", []result{{iops: 98, cpuPerGiB: 0.9}, {iops: 99, cpuPerGiB: 0.85}, {iops: 99, cpuPerGiB: 0.9}}, "not met (0 of 3 rounds)"},
		{"a failed round left out", []result{{iops: 120, cpuPerGiB: 1}, {}, {iops: 80, cpuPerGiB: 1}}, "met (1 of 2 rounds)"},
		{"every round failed", []result{{}, {}, {}}, "no rounds to compare"},
	} {
		if got := verdict(c.gdm, best); got != c.want {
			t.Errorf("%s: verdict = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestTally(t *testing.T) {
	for _, c := range []struct {
		who  []string
		want string
	}{
		{[]string{"qemu-nbd", "nbdkit", "nbdkit"}, "nbdkit 2, qemu-nbd 1"},
		{[]string{"go-nbd", "", "go-nbd"}, "go-nbd 2"},
		{[]string{"", ""}, "none ran"},
	} {
		if got := tally(c.who); got != c.want {
			t.Errorf("tally(%q) = %q, want %q", c.who, got, c.want)
		}
	}
}

func TestBestPeer(t *testing.T) {
	runs := map[string][]result{
		"j|gdm":      {{iops: 500}, {iops: 500}},
		"j|nbdkit":   {{iops: 100}, {iops: 300}},
		"j|qemu-nbd": {{iops: 200}, {}},
	}
	best, who := bestPeer(runs, "j", []string{"gdm", "nbdkit", "qemu-nbd"}, 2)
	if best[0].iops != 200 || who[0] != "qemu-nbd" || best[1].iops != 300 || who[1] != "nbdkit" {
		t.Errorf("bestPeer = %v %v, want qemu-nbd's 200 then nbdkit's 300 (gdm is no peer)", best, who)
	}
}

func TestLoadNote(t *testing.T) {
	if got := parseLoad("7.25 6.10 5.02 3/412 9876\n"); got != 7.25 {
		t.Errorf("parseLoad = %v, want 7.25", got)
	}
	if got := parseLoad(""); got != 0 {
		t.Errorf("parseLoad of nothing = %v, want 0", got)
	}
	if got, want := loadNote([]float64{3.5, 0.75, 9.04}), " Load average (1 min) before each fio run: 0.8 to 9.0."; got != want {
		t.Errorf("loadNote = %q, want %q", got, want)
	}
	if got := loadNote(nil); got != "" {
		t.Errorf("loadNote of no runs = %q, want nothing", got)
	}
}

// A target row (crypt) is reported as a ratio to gdm's linear row of the
// same rounds, and is no gdm variant the peers' goal is judged for.
func TestVersusLinear(t *testing.T) {
	saved := jobs
	defer func() { jobs = saved }()
	jobs = []job{{name: "j"}}
	runs := map[string][]result{
		"j|gdm":       {{iops: 100, cpuPerGiB: 1}, {iops: 200, cpuPerGiB: 1}, {iops: 100, cpuPerGiB: 2}},
		"j|gdm-crypt": {{iops: 50, cpuPerGiB: 3}, {iops: 150, cpuPerGiB: 2}, {iops: 60, cpuPerGiB: 4}},
		"j|nbdkit":    {{iops: 90, cpuPerGiB: 1}, {iops: 90, cpuPerGiB: 1}, {iops: 90, cpuPerGiB: 1}},
	}
	var b strings.Builder
	versusLinear(&b, runs, []string{"gdm", "gdm-crypt", "nbdkit"})
	if !strings.Contains(b.String(), "| j | crypt | -40% (-50..-25) | +100% (+100..+200) |") {
		t.Fatalf("versus linear:\n%s", b.String())
	}
	b.Reset()
	goals(&b, runs, []string{"gdm", "gdm-crypt", "nbdkit"}, 3)
	if strings.Contains(b.String(), "gdm-crypt") {
		t.Fatalf("the crypt row is judged against the peers:\n%s", b.String())
	}
}
