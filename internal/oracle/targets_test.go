package oracle

import (
	"strings"
	"testing"
)

// listingSide is a fake side that lists the given target types.
type listingSide struct {
	*fakeSide
	text string
}

func (l listingSide) Targets() (string, error) { return l.text, nil }

// RunTargets passes when gdm's versions are dm's, fails on a version that
// differs or a listing it cannot read, and notes a type dm lacks.
func TestRunTargets(t *testing.T) {
	dm := "linear           v1.4.0\nstriped          v1.6.0\nerror            v1.5.0\n"
	for _, c := range []struct {
		gdm   string
		diffs []string
		notes []string
	}{
		{"linear v1.4.0\nstriped v1.6.0\n", nil, nil},
		{"linear v1.4.0\nstriped v1.5.0\n", []string{"striped: dm v1.6.0, gdm v1.5.0"}, nil},
		{"linear v1.4.0\ndust v1.0.0\n", nil, []string{"dm has no dust target"}},
		{"linear 1.4.0\n", []string{"bad line"}, nil},
		{"", []string{"lists no target types"}, nil},
	} {
		rn := &Runner{A: listingSide{newFake(t, "dm", 4096), dm}, B: listingSide{newFake(t, "gdm", 4096), c.gdm}}
		rep := rn.RunTargets()
		if !matches(rep.Diffs, c.diffs) || !matches(rep.Notes, c.notes) {
			t.Errorf("gdm %q: diffs %q, notes %q; want %q and %q", c.gdm, rep.Diffs, rep.Notes, c.diffs, c.notes)
		}
	}
}

// matches says whether got has one entry per want, each containing it.
func matches(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			return false
		}
	}
	return true
}
