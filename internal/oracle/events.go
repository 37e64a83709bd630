package oracle

import (
	"fmt"
	"strings"
)

// eventVerber is a side that runs dmsetup's device verbs by its CLI
// (dmsetup, gdm), on names it may prefix: what the events case needs.
type eventVerber interface {
	EventVerb(args ...string) (string, error)
	DeviceName(name string) string
}

// EventVerb runs dmsetup with args.
func (d *DM) EventVerb(args ...string) (string, error) { return d.dmsetup("", args...) }

// DeviceName is name as this DM calls it in the kernel.
func (d *DM) DeviceName(name string) string { return d.prefix + name }

// EventVerb runs gdm with args.
func (g *GDM) EventVerb(args ...string) (string, error) { return g.gdm("", args...) }

// DeviceName is name: a gdm has its own name space.
func (g *GDM) DeviceName(name string) string { return name }

// eventSteps is the events case: each verb, then the device's event
// number read back (dm's event_nr, which only a target's event or a
// rename moves; loads, clears, suspends and resumes do not). %s is the
// device's name, %t the name it is renamed to and back from.
var eventSteps = [][]string{
	{"create", "%s", "--table", "0 8 zero"},
	{"load", "%s", "--table", "0 16 zero"},
	{"clear", "%s"},
	{"load", "%s", "--table", "0 16 zero"},
	{"suspend", "%s"},
	{"resume", "%s"},
	{"suspend", "%s"},
	{"resume", "%s"},
	{"rename", "%s", "%t"},
	{"rename", "%t", "%s"},
	{"create", "%n", "--notable"},
	{"rename", "%n", "%m"},
}

// RunEvents runs eventSteps on both sides and compares the event number
// after each: the number `info -c -o events` prints and `wait` waits on.
func (rn *Runner) RunEvents() *Report {
	rep := &Report{Case: "events", Ops: len(eventSteps)}
	var seen [2][]string
	for i, s := range []Side{rn.A, rn.B} {
		v, ok := s.(eventVerber)
		if !ok {
			rep.addf("%s cannot run dmsetup's verbs", s.Name())
			return rep
		}
		got, err := eventRun(v)
		if err != nil {
			rep.addf("%s: %v", s.Name(), err)
			return rep
		}
		seen[i] = got
	}
	for i, step := range eventSteps {
		if seen[0][i] != seen[1][i] {
			rep.addf("after %s: event number %s on %s, %s on %s", strings.Join(step, " "),
				seen[0][i], rn.A.Name(), seen[1][i], rn.B.Name())
		}
	}
	return rep
}

// eventRun runs eventSteps on v and returns the event number of the
// device each step was on, after it; the devices are removed after.
func eventRun(v eventVerber) ([]string, error) {
	names := map[string]string{"%s": v.DeviceName("oracle-ev"), "%t": v.DeviceName("oracle-ev2"),
		"%n": v.DeviceName("oracle-evn"), "%m": v.DeviceName("oracle-evm")}
	defer func() {
		for _, n := range names {
			v.EventVerb("remove", n)
		}
	}()
	var out []string
	for _, step := range eventSteps {
		args := make([]string, len(step))
		for i, a := range step {
			if n, ok := names[a]; ok {
				a = n
			}
			args[i] = a
		}
		if _, err := v.EventVerb(args...); err != nil {
			return nil, fmt.Errorf("%s: %v", strings.Join(args, " "), err)
		}
		on := args[1]
		if step[0] == "rename" {
			on = args[2]
		}
		n, err := v.EventVerb("info", "-c", "-o", "events", "--noheadings", on)
		if err != nil {
			return nil, fmt.Errorf("info %s: %v", on, err)
		}
		out = append(out, strings.TrimSpace(n))
	}
	return out, nil
}
