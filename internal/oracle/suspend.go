package oracle

import (
	"fmt"
	"strings"
	"time"
)

// side is rn.A for 0 and rn.B for 1, the index timing keeps them by.
func (rn *Runner) side(i int) Side {
	if i == 0 {
		return rn.A
	}
	return rn.B
}

// suspendDuring runs a SuspendDuring op on side i: the inner op starts,
// and At later (time enough to reach the target and be held there, and far
// less than its Delay) the device is suspended. The result is the inner
// op's, timed from its start; a failed suspend is the result's error. The
// device is left suspended: the script resumes or reloads it.
func (rn *Runner) suspendDuring(i int, name string, d *Device, op Op) Result {
	inner := Op{Kind: op.Inner, Off: op.Off, Len: op.Len, Seed: op.Seed}
	done := make(chan Result, 1)
	start := time.Now()
	go func() {
		r := d.Do(inner)
		r.Elapsed = time.Since(start)
		done <- r
	}()
	time.Sleep(op.At) // the op must be held by the target when the suspend comes: that is the case
	err := rn.side(i).Suspend(name)
	r := <-done
	if err != nil {
		r.Err = "suspend failed: " + r.Err
	}
	return r
}

// checkCut is "" when the suspend let the held op go on both sides, that
// is before its delay was over; else which side kept it.
func checkCut(op Op, nameA, nameB string, ra, rb Result) string {
	var kept []string
	for _, s := range []struct {
		name string
		r    Result
	}{{nameA, ra}, {nameB, rb}} {
		if s.r.Elapsed >= op.Delay {
			kept = append(kept, fmt.Sprintf("%s held it %v", s.name, s.r.Elapsed.Round(time.Millisecond)))
		}
	}
	if len(kept) == 0 {
		return ""
	}
	return fmt.Sprintf("suspend did not release the op delayed %v: %s", op.Delay, strings.Join(kept, ", "))
}
