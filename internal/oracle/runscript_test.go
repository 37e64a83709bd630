package oracle

import (
	"strings"
	"testing"
)

// Sides that disagree on a resume stop the script there: one side's
// device may be left suspended, and the next read of it would wait for
// ever (a CI run once hung so). The report says where and why, and no op
// after the resume runs.
func TestScriptStopsWhereSidesDisagreeOnADeviceOp(t *testing.T) {
	const size = 8192 * 512
	a, b := newFake(t, "dm", size), newFake(t, "gdm", size)
	b.failResume = true
	rn := &Runner{A: a, B: b, DiskSize: size}
	script := []Op{
		{Kind: Write, Off: 0, Len: 4096, Seed: 1},
		{Kind: Suspend},
		{Kind: Resume},
		{Kind: Read, Off: 0, Len: 4096},
		{Kind: Write, Off: 4096, Len: 4096, Seed: 2},
	}
	r := rn.Run(Case{Name: "stop", Seed: 1, Devs: []Init{Zeros}, Table: "0 8192 linear $0 0", Script: script})
	if r.OK() || !strings.Contains(r.String(), "the script stopped there: the sides disagree on a resume") {
		t.Fatalf("a resume that failed on one side only:\n%s", r)
	}
	if r.Ops != 3 {
		t.Fatalf("%d ops ran, want 3 (up to the resume)", r.Ops)
	}
}
