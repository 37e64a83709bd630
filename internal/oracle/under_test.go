package oracle

import (
	"slices"
	"strings"
	"testing"
)

// A case's under devices are made before its devices and removed after
// them, in reverse; $uK reaches each side's table as that side's path of
// under device K, and the table text, where the two sides' paths differ,
// compares as $uK.
func TestRunnerUnderDevices(t *testing.T) {
	const size = 8192 * 512
	a, b := newFake(t, "dm", size), newFake(t, "gdm", size)
	rn := &Runner{A: a, B: b, DiskSize: size}
	a.ownFiles(t, size, "c-u0", "c-u1")
	b.ownFiles(t, size, "c-u0", "c-u1")
	c := Case{Name: "c", Seed: 1, Devs: []Init{Pattern(3)},
		Under: []string{"0 4096 linear $0 0", "0 4096 linear $0 4096"},
		Table: "0 4096 linear $u1 0\n4096 4096 linear $u0 0", More: []string{"0 8 linear $u0 8"},
		Script: []Op{{Kind: Reload, Arg: "0 8192 striped 2 8 $u0 0 $u1 0"}, {Kind: Resume}}}
	if r := rn.Run(c); !r.OK() {
		t.Fatalf("two identical sides differ:\n%s", r)
	}
	want := []string{"+c-u0", "+c-u1", "+c", "+c-1", "-c-1", "-c", "-c-u1", "-c-u0"}
	for _, f := range []*fakeSide{a, b} {
		if !slices.Equal(f.log, want) {
			t.Errorf("%s made and removed %v, want %v", f.name, f.log, want)
		}
	}
	for _, f := range []*fakeSide{a, b} {
		u0, u1 := f.byName["c-u0"], f.byName["c-u1"]
		wantGiven := []string{"0 4096 linear " + f.disk + " 0", "0 4096 linear " + f.disk + " 4096",
			"0 4096 linear " + u1 + " 0\n4096 4096 linear " + u0 + " 0", "0 8 linear " + u0 + " 8",
			"0 8192 striped 2 8 " + u0 + " 0 " + u1 + " 0"}
		if !slices.Equal(f.given, wantGiven) {
			t.Errorf("%s was given %q, want %q", f.name, f.given, wantGiven)
		}
	}
	if got := rn.unbind(0, a.byName["c-u0"]); got != a.byName["c-u0"] {
		t.Errorf("a finished case's under names still unbind: %q", got)
	}
}

// A case whose under device is refused on one side says so and leaves
// nothing behind on either.
func TestRunnerUnderRefused(t *testing.T) {
	const size = 8192 * 512
	a, b := newFake(t, "dm", size), newFake(t, "gdm", size)
	b.refuse = "c-u1"
	rn := &Runner{A: a, B: b, DiskSize: size}
	r := rn.Run(Case{Name: "c", Devs: []Init{Zeros}, Under: []string{"0 8 zero", "0 8 zero"}, Table: "0 8 linear $u0 0"})
	if r.OK() || !strings.Contains(r.String(), "create under device c-u1") {
		t.Fatalf("a refused under device passed:\n%s", r)
	}
	for _, f := range []*fakeSide{a, b} {
		if len(f.tables) != 0 {
			t.Errorf("%s kept %v", f.name, f.tables)
		}
	}
}

// An acceptance table over an under device loads over that side's name
// of it, compares as $u0, and the under device goes after the table.
func TestRunAcceptUnder(t *testing.T) {
	const size = 8192 * 512
	a, b := newFake(t, "dm", size), newFake(t, "gdm", size)
	a.ownFiles(t, size, "accept-3-u0")
	b.ownFiles(t, size, "accept-3-u0")
	rn := &Runner{A: a, B: b, DiskSize: size}
	r := rn.RunAccept(3, Accept{Table: "0 8 linear $u0 0", Want: true, Under: []string{"0 8 linear $0 0"}})
	if !r.OK() {
		t.Fatalf("two identical sides differ:\n%s", r)
	}
	for _, f := range []*fakeSide{a, b} {
		if want := []string{"+accept-3-u0", "+accept-3", "-accept-3", "-accept-3-u0"}; !slices.Equal(f.log, want) {
			t.Errorf("%s made and removed %v, want %v", f.name, f.log, want)
		}
		if want := "0 8 linear " + f.byName["accept-3-u0"] + " 0"; f.given[1] != want {
			t.Errorf("%s was given %q, want %q", f.name, f.given[1], want)
		}
	}
	if rn.under[0] != nil || rn.underNames[1] != nil {
		t.Error("the runner still knows the under device after the table")
	}
}
