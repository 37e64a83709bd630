package oracle

import (
	"fmt"
	"sort"
	"strings"
)

// targetLister is a side that can say which target types it maps and
// which versions (dmsetup targets, gdm targets).
type targetLister interface {
	Targets() (string, error)
}

// Targets is `dmsetup targets`: the target types of the loaded modules.
func (d *DM) Targets() (string, error) { return d.dmsetup("", "targets") }

// Targets is `gdm targets`: every type gdm maps, with the version of
// the kernel's target each claims to follow.
func (g *GDM) Targets() (string, error) { return g.gdm("", "targets") }

// ParseTargets reads `dmsetup targets` output ("linear  v1.4.0" a line)
// into a version by type name.
func ParseTargets(text string) (map[string]string, error) {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 || !strings.HasPrefix(f[1], "v") {
			return nil, fmt.Errorf("targets: bad line %q", line)
		}
		out[f[0]] = strings.TrimPrefix(f[1], "v")
	}
	return out, nil
}

// RunTargets checks that every target type gdm maps claims the version the
// kernel's dm has for it: the version of the dm behaviour the cases
// compare with. A type the guest's dm lacks (its module not loaded, or not
// built) is a note.
func (rn *Runner) RunTargets() *Report {
	rep := &Report{Case: "targets", Ops: 1}
	sides := [2]map[string]string{}
	for i, s := range []Side{rn.A, rn.B} {
		l, ok := s.(targetLister)
		if !ok {
			rep.addf("%s cannot list its target types", s.Name())
			return rep
		}
		text, err := l.Targets()
		if err == nil {
			sides[i], err = ParseTargets(text)
		}
		if err != nil {
			rep.addf("%s: %v", s.Name(), err)
			return rep
		}
	}
	names := make([]string, 0, len(sides[1]))
	for n := range sides[1] {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		want, ok := sides[0][n]
		switch {
		case !ok:
			rep.note(fmt.Sprintf("%s has no %s target to compare with", rn.A.Name(), n))
		case want != sides[1][n]:
			rep.addf("%s: %s v%s, %s v%s", n, rn.A.Name(), want, rn.B.Name(), sides[1][n])
		}
	}
	if len(names) == 0 {
		rep.addf("%s lists no target types", rn.B.Name())
	}
	return rep
}
