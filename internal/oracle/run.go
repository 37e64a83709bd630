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
	next     int // the next nbd index, one per case
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
}

// Run runs one case on both sides and reports every difference.
func (rn *Runner) Run(c Case) *Report {
	rep := &Report{Case: c.Name, Seed: c.Seed}
	n := len(c.Devs)
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
	errA := rn.timing.load(0, func() error { return rn.A.Create(c.Name, Bind(c.Table, rn.A.Disks())) })
	errB := rn.timing.load(1, func() error { return rn.B.Create(c.Name, Bind(c.Table, rn.B.Disks())) })
	if errA != nil || errB != nil {
		rep.addf("create: %s: %v; %s: %v", rn.A.Name(), errA, rn.B.Name(), errB)
		rn.remove(c.Name, errA == nil, errB == nil)
		return rep
	}
	rn.table, rn.later, rn.laterNote, rn.logFull = c.Table, c.Later, "", false
	script := c.Script
	if script == nil {
		script = Standard(c.Seed, c.Table)
	}
	rn.runScript(rep, c.Name, script)
	rn.compareText(rep, c.Name, "after the script")
	if err := rn.remove(c.Name, true, true); err != nil {
		rep.addf("remove: %v", err)
	}
	logs := LogDevices(c)
	for i := range c.Devs {
		if slices.Contains(logs, i) {
			rn.compareLog(rep, i)
		} else {
			rn.compareDisk(rep, i)
		}
	}
	return rep
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
	rn.next++
	pa, err := rn.A.Attach(name, rn.next)
	if err != nil {
		return nil, nil, fmt.Errorf("attach %s: %w", rn.A.Name(), err)
	}
	pb, err := rn.B.Attach(name, rn.next)
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
