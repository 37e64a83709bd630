package oracle

import (
	"fmt"
	"testing"
)

// eventingSide is a fake side whose event number moves on the verbs in
// bumps, on the device they name (a rename's on its new name).
type eventingSide struct {
	*fakeSide
	bumps  map[string]bool
	events map[string]int
}

func (e *eventingSide) DeviceName(name string) string { return name }

func (e *eventingSide) EventVerb(args ...string) (string, error) {
	switch args[0] {
	case "info":
		return fmt.Sprintf("%d\n", e.events[args[len(args)-1]]), nil
	case "rename":
		e.events[args[2]] = e.events[args[1]]
		if e.bumps["rename"] {
			e.events[args[2]]++
		}
	default:
		if e.bumps[args[0]] {
			e.events[args[1]]++
		}
	}
	return "", nil
}

// RunEvents passes when both sides move their event numbers on the same
// verbs, and names the first verb after which they differ.
func TestRunEvents(t *testing.T) {
	side := func(name string, bumps ...string) *eventingSide {
		e := &eventingSide{fakeSide: newFake(t, name, 4096), bumps: map[string]bool{}, events: map[string]int{}}
		for _, b := range bumps {
			e.bumps[b] = true
		}
		return e
	}
	same := (&Runner{A: side("dm", "rename"), B: side("gdm", "rename")}).RunEvents()
	if len(same.Diffs) != 0 {
		t.Fatalf("the same events differ: %q", same.Diffs)
	}
	rep := (&Runner{A: side("dm", "rename"), B: side("gdm", "rename", "resume")}).RunEvents()
	if len(rep.Diffs) == 0 || !matches(rep.Diffs[:1], []string{"after resume %s: event number 0 on dm, 1 on gdm"}) {
		t.Fatalf("a resume event only gdm raises: %q", rep.Diffs)
	}
	if rep := (&Runner{A: newFake(t, "dm", 4096), B: side("gdm")}).RunEvents(); !matches(rep.Diffs, []string{"cannot run dmsetup's verbs"}) {
		t.Fatalf("a side without verbs: %q", rep.Diffs)
	}
}
