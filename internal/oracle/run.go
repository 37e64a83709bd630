package oracle

import (
	"errors"
	"fmt"
	"slices"
)

// Runner runs cases on two sides, A (dm, the reference) and B (gdm).
type Runner struct {
	A, B Side
	// Direct opens devices with O_DIRECT (the guest); unit tests on
	// regular files go without.
	Direct bool
	// DiskSize is how much of each backing disk a case fills and compares.
	DiskSize int64
	next     int // the last nbd index used (an attach takes the next)
	// under are the paths of the current half's under devices on each
	// side (A, B), underNames each side's names of them and their tokens
	// ($uK), underNBD the nbd index each is attached at where a side
	// needs one: under.go.
	under      [2][]string
	underNames [2]map[string]string
	underNBD   []int
	// table is the case's table as now loaded; skipped counts the
	// discards of the case that oldDiscard kept from gdm.
	table   string
	skipped int
	timing  timing
	// later is the case's Later; laterNote what it last said.
	later     func(Op, *Result) string
	laterNote string
	// logFull is set when dm's status said a log-writes log filled.
	logFull bool
	// BeforeDMIO, if set, runs before each I/O op of a script on side A
	// with the device's name: how a test makes dm hang (by suspending
	// the device) to see that a hang on the kernel's side is handled.
	BeforeDMIO func(dev string)
}

// Run runs one case on both sides and reports every difference.
func (rn *Runner) Run(c Case) *Report {
	rep := &Report{Case: c.Name, Seed: c.Seed}
	n := len(c.Devs)
	restore, err := rn.useFourK(n, c.FourK)
	if err != nil {
		rep.addf("the case's 4K disks: %v", err)
		return rep
	}
	defer restore()
	if n > len(rn.A.Disks()) || n > len(rn.B.Disks()) {
		rep.addf("case needs %d backing devices; the guest has %d and %d", n, len(rn.A.Disks()), len(rn.B.Disks()))
		return rep
	}
	for i, init := range c.Devs {
		for _, s := range []Side{rn.A, rn.B} {
			if err := rn.fill(s.Disks()[i], init); err != nil {
				rep.addf("preparing %s $%d: %v", s.Name(), i, err)
				return rep
			}
		}
	}
	rn.later = c.Later
	script := c.Script
	if script == nil {
		script = Standard(c.Seed, c.Table)
	}
	if !rn.half(rep, c.Name, Half{Table: c.Table, More: c.More, Under: c.Under, Script: script, Expect: c.Expect}) {
		return rep
	}
	rn.compareDisks(rep, c)
	if c.Then == nil {
		return rep
	}
	first := len(rep.Diffs)
	if err := rn.swapDisks(n); err != nil {
		rep.addf("second half: swapping the backing devices: %v", err)
		return rep
	}
	if rn.half(rep, c.Name, *c.Then) {
		rn.compareDisks(rep, c)
	}
	for i := first; i < len(rep.Diffs); i++ {
		rep.Diffs[i] = "second half (each side on the other's backing devices): " + rep.Diffs[i]
	}
	return rep
}

// InFlight is the side (0 for A, 1 for B) whose I/O op of a case's
// script is in flight now, or -1 when none is. Ops run one side after the
// other, so while one side's op hangs the other has none outstanding.
func (rn *Runner) InFlight() int { return int(rn.timing.busy.Load()) - 1 }

// half creates a case's under devices (named name-u0, name-u1, ...), then
// its devices (h.Table is named name, h.More name-1, name-2, ...), runs
// the script, compares every device's text, checks h.Expect, and removes
// them all, the under devices last. It says whether the devices were made
// on both sides.
func (rn *Runner) half(rep *Report, name string, h Half) bool {
	under, tables := h.Under, append([]string{h.Table}, h.More...)
	unames := underNamesOf(name, len(under))
	if !rn.makeUnder(rep, unames, under) {
		return false
	}
	defer rn.dropUnder(rep, unames)
	names := devNamesOf(name, len(tables))
	for j, tb := range tables {
		errA := rn.timing.load(0, func() error { return rn.A.Create(names[j], rn.bind(0, tb)) })
		errB := rn.timing.load(1, func() error { return rn.B.Create(names[j], rn.bind(1, tb)) })
		if errA != nil || errB != nil {
			rep.addf("create %s: %s: %v; %s: %v", names[j], rn.A.Name(), errA, rn.B.Name(), errB)
			rn.remove(names[j], errA == nil, errB == nil)
			rn.removeAll(rep, names[:j])
			return false
		}
	}
	rn.table, rn.laterNote, rn.logFull = tables[0], "", false
	rn.runScript(rep, names, h.Script)
	for _, nm := range append(names, unames...) {
		rn.compareText(rep, nm, "after the script")
	}
	rn.expect(rep, append(names, unames...), h.Expect)
	rn.removeAll(rep, names)
	return true
}

// devNamesOf names a case's n devices: name, name-1, name-2, ...
func devNamesOf(name string, n int) []string {
	names := []string{name}
	for j := 1; j < n; j++ {
		names = append(names, fmt.Sprintf("%s-%d", name, j))
	}
	return names
}

// removeAll removes devices from both sides, the last made first.
func (rn *Runner) removeAll(rep *Report, names []string) {
	for j := len(names) - 1; j >= 0; j-- {
		if err := rn.remove(names[j], true, true); err != nil {
			rep.addf("remove %s: %v", names[j], err)
		}
	}
}

// compareDisks compares a case's backing devices (its logs as logs).
func (rn *Runner) compareDisks(rep *Report, c Case) {
	logs := LogDevices(c)
	for i := range c.Devs {
		if slices.Contains(c.Scratch, i) {
			rep.note(fmt.Sprintf("backing device $%d not compared: scratch space whose layout is the kernel's to choose", i))
			continue
		}
		if slices.Contains(logs, i) {
			rn.compareLog(rep, i)
		} else {
			rn.compareDisk(rep, i)
		}
	}
}

// fill gives one backing disk its initial contents.
func (rn *Runner) fill(path string, init Init) error {
	d, err := OpenDevice(path, rn.Direct)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Fill(init, rn.DiskSize)
}

// remove takes the device away on the sides that have it.
func (rn *Runner) remove(name string, onA, onB bool) error {
	var errs []error
	for _, s := range []struct {
		side Side
		on   bool
	}{{rn.A, onA}, {rn.B, onB}} {
		if s.on {
			errs = append(errs, s.side.Detach(name), s.side.Remove(name))
		}
	}
	return errors.Join(errs...)
}

// attach opens both sides' mapped devices for I/O.
func (rn *Runner) attach(name string) (a, b *Device, err error) {
	n := rn.nextNBD()
	pa, err := rn.A.Attach(name, n)
	if err != nil {
		return nil, nil, fmt.Errorf("attach %s: %w", rn.A.Name(), err)
	}
	pb, err := rn.B.Attach(name, n)
	if err != nil {
		return nil, nil, fmt.Errorf("attach %s: %w", rn.B.Name(), err)
	}
	if a, err = OpenDevice(pa, rn.Direct); err != nil {
		return nil, nil, err
	}
	if b, err = OpenDevice(pb, rn.Direct); err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

// nextNBD is the nbd index for the next attach: 1 up to NBDDevices-1, then
// 1 again. An index is used again only a run's worth of attaches after its
// disconnect, never right after it.
func (rn *Runner) nextNBD() int {
	rn.next = rn.next%(NBDDevices-1) + 1
	return rn.next
}
