package table

// Suspend and resume: the gate that holds new I/O, the quiesce that waits
// for in-flight I/O, the swap of the inactive table into the live slot, and
// the target hooks at dm's points around them (lifecycle.go).

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Suspend stops new I/O (it waits in Get), waits for in-flight I/O on the
// live table to complete, then flushes the backing devices unless noflush.
// If ctx ends before in-flight I/O completes, or the flush fails (a
// remote device's flush ends with ctx too), the suspend is undone: the
// device runs on as before and the error says why. Suspending a suspended
// device does nothing.
func (d *Device) Suspend(ctx context.Context, noflush bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if d.suspended.Load() {
		return nil
	}
	t := d.live.Load()
	if t != nil {
		t.presuspend(ctx)
	}
	if err := d.quiesceLocked(ctx); err != nil {
		if t != nil {
			t.presuspendUndo(ctx)
		}
		return err
	}
	if t != nil && !noflush {
		if err := t.Flush(ctx); err != nil {
			// Undone, as a quiesce that timed out is: the verb failed, so
			// nothing changed. A backing device that cannot flush (a dead
			// remote host) would otherwise leave the device suspended
			// behind an error, and no record says so.
			d.releaseGateLocked()
			t.presuspendUndo(ctx)
			return fmt.Errorf("table: suspend %s: flush: %w (not suspended; --noflush suspends without the flush)", d.Name(), err)
		}
	}
	d.suspended.Store(true)
	if t != nil {
		t.postsuspend(ctx)
	}
	return nil
}

// quiesceLocked raises the gate and waits until the live table has no
// holders. On ctx's end it lowers the gate again.
func (d *Device) quiesceLocked(ctx context.Context) error {
	gate := make(chan struct{})
	d.gate.Store(&gate)
	t := d.live.Load()
	if t == nil {
		return nil
	}
	if _, ok := t.drain(ctx, d.log(), "suspend"); !ok {
		d.releaseGateLocked()
		return fmt.Errorf("table: suspend %s: in-flight I/O did not complete: %w", d.Name(), ctx.Err())
	}
	t.undrain()
	return nil
}

func (d *Device) releaseGateLocked() {
	if g := d.gate.Swap(nil); g != nil {
		close(*g)
	}
}

// Resume makes the inactive table live, if there is one, and releases
// waiting I/O. Without live, a device that is not suspended is quiesced
// first, like dm: new I/O waits while in-flight I/O on the old table
// completes, then the new table goes live; with live, the new table goes
// live at once and only the old table's destruction waits for its holders.
// Either way the old table is destroyed here, after its holders drain.
//
// The hooks run at dm's points (see the package doc): the new table's
// PreResume first, before anything changes, so that a refusal leaves the
// old table live and the new one inactive; then the old table's suspend
// hooks; then the new table's Resume just before its I/O is let in. A live
// swap with a NoLiveSwap target in either table is refused with
// ErrLiveSwapRefused, changing nothing. Only a swap that would leave two
// tables serving I/O is refused: not a first resume (no old table), nor
// one on a suspended device (the old table's I/O has stopped).
func (d *Device) Resume(ctx context.Context, live bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	next, old := d.inactive.Load(), d.live.Load()
	if next == nil {
		return d.resumeLiveLocked(ctx)
	}
	if live && old != nil && !d.suspended.Load() {
		if err := d.checkLiveSwap(old, next); err != nil {
			return err
		}
	}
	if err := next.preresume(ctx); err != nil {
		return fmt.Errorf("table: resume %s refused: %w (no swap was made)", d.Name(), err)
	}
	flushOld, err := d.stopOldLocked(ctx, old, live)
	if err != nil {
		return err
	}
	if old != nil && flushOld {
		old.presuspend(ctx) // a live swap: its I/O goes on until it drains
		d.retire(old, true) // before the swap: no FLUSH may miss it
	}
	next.resume(ctx)
	if old != nil {
		old.devs.SetEventFunc(nil)
	}
	next.devs.SetEventFunc(d.event) // its events are the device's now
	d.live.Store(next)
	d.inactive.Store(nil)
	d.stats.Generation.Add(1)
	d.stats.Swaps.Add(1)
	d.suspended.Store(false)
	d.releaseGateLocked()
	if old != nil {
		d.destroyTable(old, flushOld)
		if flushOld {
			if err := old.lastFlush(); err != nil {
				d.keepLostFlush(err) // before it stops retiring: no FLUSH misses it
			}
			d.retire(old, false)
		}
	}
	return nil
}

// keepLostFlush keeps err for the next FLUSH (see lostFlush), with any
// failure kept before and not reported yet.
func (d *Device) keepLostFlush(err error) {
	for {
		p := d.lostFlush.Load()
		joined := err
		if p != nil {
			joined = errors.Join(*p, err)
		}
		if d.lostFlush.CompareAndSwap(p, &joined) {
			return
		}
	}
}

// takeLostFlush is the kept failure of a retired table's last flush, if
// any, which it clears: the client's FLUSH that gets it reports it. (Not
// the server's own Sync: a disconnect's or a suspend's flush would use the
// report up where no client sees it.)
func (d *Device) takeLostFlush() error {
	if d.lostFlush.Load() == nil {
		return nil // the usual case: a read, not a write every FLUSH makes
	}
	if p := d.lostFlush.Swap(nil); p != nil {
		return fmt.Errorf("table: %s: a replaced table's last flush failed: %w", d.Name(), *p)
	}
	return nil
}

// resumeLiveLocked is Resume with no inactive table: a suspended device's
// live table resumes (if its targets agree); else nothing happens.
func (d *Device) resumeLiveLocked(ctx context.Context) error {
	t := d.live.Load()
	if t == nil {
		return fmt.Errorf("table: resume %s: %w", d.Name(), ErrNoTable)
	}
	if !d.suspended.Load() {
		return nil
	}
	if err := t.preresume(ctx); err != nil {
		return fmt.Errorf("table: resume %s refused: %w (still suspended)", d.Name(), err)
	}
	t.resume(ctx)
	d.suspended.Store(false)
	d.releaseGateLocked()
	return nil
}

// stopOldLocked stops the old live table of a swap, if any, and says
// whether it must still be flushed (at its destroy, and as a retired table
// until then).
//
// A FLUSH after the swap goes to the new table, which may map other files,
// so writes answered through the old table must be durable by then. With no
// I/O on the old table (quiesced here, or suspended) it is flushed before
// the swap, as Suspend does, and suspended. A live swap leaves it running:
// FLUSHes sync it too until it is destroyed, and the destroy flushes it
// when its holders have drained, before its files close. On an error
// nothing has changed: the old table is live.
func (d *Device) stopOldLocked(ctx context.Context, old *Table, live bool) (flushOld bool, err error) {
	if old == nil {
		return true, nil
	}
	quiesced := false
	if !live && !d.suspended.Load() {
		old.presuspend(ctx)
		if err := d.quiesceLocked(ctx); err != nil {
			old.presuspendUndo(ctx)
			return false, err
		}
		quiesced = true
	}
	if !quiesced && !d.suspended.Load() {
		return true, nil
	}
	if err := old.Flush(ctx); err != nil {
		if quiesced {
			d.releaseGateLocked()
			old.presuspendUndo(ctx)
		}
		return false, fmt.Errorf("table: resume %s: flushing the old table: %w (no swap was made)", d.Name(), err)
	}
	old.postsuspend(ctx)
	return false, nil
}

// retire adds t to (or, with add false, removes it from) the tables Flush
// also syncs. Called with mu held.
func (d *Device) retire(t *Table, add bool) {
	var now []*Table
	if p := d.retiring.Load(); p != nil {
		now = slices.Clone(*p)
	}
	if add {
		now = append(now, t)
	} else {
		now = slices.DeleteFunc(now, func(x *Table) bool { return x == t })
	}
	d.retiring.Store(&now)
}

// flushRetiring syncs the old tables of live swaps still draining.
func (d *Device) flushRetiring(ctx context.Context) error {
	p := d.retiring.Load()
	if p == nil {
		return nil
	}
	var errs []error
	for _, t := range *p {
		errs = append(errs, t.flushRetired(ctx))
	}
	return errors.Join(errs...)
}
