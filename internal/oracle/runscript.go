package oracle

import (
	"bytes"
	"fmt"
	"strings"
)

// runScript attaches both sides' devices (names[0] and the case's
// More), compares their sizes and logical block sizes, and runs the script on both, op by op, each
// on the device its Dev names. The first differing op is reported in full;
// later ones are counted (they usually follow from the first). Sides that
// disagree on a suspend, resume, reload or message stop the script.
func (rn *Runner) runScript(rep *Report, names []string, script []Op) {
	rn.skipped = 0
	rn.timing.reset()
	var as, bs []*Device
	defer func() {
		for _, d := range append(as, bs...) {
			d.Close()
		}
	}()
	for _, nm := range names {
		a, b, err := rn.attach(nm)
		if err != nil {
			rep.addf("%v", err)
			return
		}
		as, bs = append(as, a), append(bs, b)
		sa, errA := a.Size()
		sb, errB := b.Size()
		if errA != nil || errB != nil || sa != sb {
			rep.addf("device size of %s: %s %d (%v), %s %d (%v)", nm, rn.A.Name(), sa, errA, rn.B.Name(), sb, errB)
		}
		la, errA := a.LogicalBlockSize()
		lb, errB := b.LogicalBlockSize()
		if errA != nil || errB != nil || la != lb {
			rep.addf("logical block size of %s: %s %d (%v), %s %d (%v)", nm, rn.A.Name(), la, errA, rn.B.Name(), lb, errB)
		}
	}
	later := 0
	for i, op := range script {
		rep.Ops++
		if op.Dev < 0 || op.Dev >= len(names) {
			rep.addf("op %d of %d, %s: the case has no device %d", i, len(script), op, op.Dev)
			return
		}
		d := rn.step(names[op.Dev], op, as[op.Dev], bs[op.Dev])
		if d == "" {
			continue
		}
		if later++; later == 1 {
			rep.addf("op %d of %d, %s: %s", i, len(script), op, d)
		}
		if isDeviceOp(op.Kind) {
			// The sides' devices are now in different states (one
			// suspended, one loaded with another table): the rest
			// would compare unlike things, and I/O to a device left
			// suspended would wait for ever, hanging the whole run.
			rep.addf("the script stopped there: the sides disagree on a %s", op.Kind)
			break
		}
	}
	if later > 1 {
		rep.addf("%d later op(s) differ too", later-1)
	}
	rn.timing.summary(rep, rn.A.Name(), rn.B.Name())
	if rn.laterNote != "" {
		rep.note(rn.laterNote)
	}
	if rn.skipped > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d discard(s) not compared: dm 6.1 has none on a table with a zero or error target", rn.skipped))
	}
}

// step runs one op on both sides and describes how they differ ("" when
// they agree).
func (rn *Runner) step(name string, op Op, a, b *Device) string {
	var ra, rb Result
	var lateA, lateB string
	switch k := op.Kind; {
	case isDeviceOp(k):
		ra, rb = rn.deviceOp(0, name, op), rn.deviceOp(1, name, op)
		if k == Reload && ra.Err == "" {
			rn.table = op.Arg
		}
	case k == SuspendDuring:
		ra, rb = rn.suspendDuring(0, name, a, op), rn.suspendDuring(1, name, b, op)
	case k == WaitMerged:
		ra, rb = rn.waitMerged(0, name), rn.waitMerged(1, name)
	case k == Discard:
		if ra, lateA = rn.timing.do(0, a, op); oldDiscard(ra, rn.table) {
			rn.skipped++
			return ""
		}
		rb, lateB = rn.timing.do(1, b, op)
	default:
		if rn.BeforeDMIO != nil {
			rn.BeforeDMIO(name)
		}
		ra, lateA = rn.timing.do(0, a, op)
		rb, lateB = rn.timing.do(1, b, op)
	}
	if rn.later != nil {
		if n := rn.later(op, &ra); n != "" {
			rn.laterNote = n
		}
	}
	if lateA != "" || lateB != "" {
		return fmt.Sprintf("timing: %s %s; %s %s", rn.A.Name(), orOK(lateA), rn.B.Name(), orOK(lateB))
	}
	if ra.Err != rb.Err || ra.N != rb.N {
		return fmt.Sprintf("result %s: %s, %s: %s", rn.A.Name(), ra, rn.B.Name(), rb)
	}
	if (op.Kind == Read || op.Inner == Read) && ra.Err == "" && !bytes.Equal(ra.Data, rb.Data) {
		return "read data differs: " + dataDiff(rn.A.Name(), rn.B.Name(), ra.Data, rb.Data, op.Off)
	}
	if op.Kind == SuspendDuring {
		return checkCut(op, rn.A.Name(), rn.B.Name(), ra, rb)
	}
	if isDM(rn.B) { // a self run: dm's delays are checked per class
		return ""
	}
	return checkDelay(op, rn.B.Name(), rb)
}

// orOK is s, or "in time" when s is empty.
func orOK(s string) string {
	if s == "" {
		return "in time"
	}
	return s
}

// oldDiscard is a discard the guest's dm (6.1) refuses for a reason later
// kernels dropped: a table with a zero or an error target has no discard
// at all there, where since 6.5 or so zero drops discards and error fails
// them with EIO, as gdm does. Such a discard is not run on gdm (its
// contents would then differ for a reason that is not gdm's), and the
// report counts it.
func oldDiscard(r Result, table string) bool {
	if r.Err != "ENOTSUP" && r.Err != "EOPNOTSUPP" {
		return false
	}
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && (f[2] == "zero" || f[2] == "error") {
			return true
		}
	}
	return false
}

// isDeviceOp says whether an op of kind k is done to the device itself
// (deviceOp); sides that disagree on one stop the script (see runScript).
func isDeviceOp(k OpKind) bool {
	return k == Suspend || k == Resume || k == Reload || k == Message
}

// deviceOp runs an op on the device itself; only success or failure is a
// user's to see (the tools' messages differ).
func (rn *Runner) deviceOp(i int, name string, op Op) Result {
	s := rn.side(i)
	var err error
	switch op.Kind {
	case Suspend:
		err = s.Suspend(name)
	case Resume:
		err = s.Resume(name)
	case Reload:
		err = rn.timing.load(i, func() error { return s.Reload(name, rn.bind(i, op.Arg)) })
	case Message:
		err = s.Message(name, strings.Fields(op.Arg))
	}
	if err != nil {
		// Compared as "failed" (the sides' messages differ); said in
		// full on the console, where a run that then hangs on a device
		// left suspended shows why.
		fmt.Printf("ORACLE-OP %s %s on %s failed: %v\n", name, op.Kind, s.Name(), err)
		return Result{Err: "failed"}
	}
	return Result{}
}

// compareDisk compares backing disk i of both sides, a MiB at a time.
func (rn *Runner) compareDisk(rep *Report, i int) {
	a, err := OpenDevice(rn.A.Disks()[i], rn.Direct)
	if err != nil {
		rep.addf("final contents of $%d: %v", i, err)
		return
	}
	defer a.Close()
	b, err := OpenDevice(rn.B.Disks()[i], rn.Direct)
	if err != nil {
		rep.addf("final contents of $%d: %v", i, err)
		return
	}
	defer b.Close()
	for off := int64(0); off < rn.DiskSize; off += 1 << 20 {
		op := Op{Kind: Read, Off: off, Len: min(1<<20, rn.DiskSize-off)}
		ra, rb := a.Do(op), b.Do(op)
		if ra.Err != "" || rb.Err != "" {
			rep.addf("final contents of $%d at %d: %s: %s, %s: %s", i, off, rn.A.Name(), ra, rn.B.Name(), rb)
			return
		}
		if d := dataDiff(rn.A.Name(), rn.B.Name(), ra.Data, rb.Data, off); d != "" {
			rep.addf("final contents of backing device $%d: %s", i, d)
			return
		}
	}
}
