package table

// A device's I/O: each request takes the live table (Get), runs on it, and
// gives it back (Put), counted in the device's statistics.

import (
	"context"
	"errors"
	"time"

	"github.com/gdm-project/gdm/pkg/targets"
)

// monoEpoch makes time.Since a cheap monotonic clock: it reads only the
// monotonic counter, where time.Now reads the wall clock too.
var monoEpoch = time.Now()

// ioClock is when an I/O began, if the device times its I/O.
type ioClock struct {
	timed bool
	start time.Duration
}

// startClock starts an I/O's clock.
func (d *Device) startClock() ioClock {
	if !d.timeIO.Load() {
		return ioClock{}
	}
	return ioClock{timed: true, start: time.Since(monoEpoch)}
}

// count counts a finished I/O in the device's statistics, and its latency
// if it was timed.
func (d *Device) count(op Op, n int64, err error, c ioClock) {
	d.stats.IO.record(op, n, err)
	if c.timed {
		d.stats.Latency[op].Observe(time.Since(monoEpoch) - c.start)
	}
}

// io runs one I/O on the live table, counting it.
func (d *Device) io(ctx context.Context, op Op, n int64, fn func(t *Table) error) error {
	clock := d.startClock()
	t, err := d.Get(ctx)
	if err == nil {
		err = runHeld(t, fn)
	}
	if err == targets.ErrPipeFull {
		return err // not done: the caller reads the ordinary way, counted then
	}
	d.count(op, n, err, clock)
	return err
}

// runHeld runs fn on t, which the caller took, and gives t back even if
// fn panics: the NBD server answers a panicking request with an error and
// serves on, and a reference never given back would keep the table's
// destroy (a remove, a swap, the daemon's shutdown) waiting forever.
func runHeld(t *Table, fn func(t *Table) error) error {
	defer t.Put()
	return fn(t)
}

// ReadAt reads len(p) bytes at off from the live table.
func (d *Device) ReadAt(ctx context.Context, p []byte, off int64) error {
	return d.io(ctx, OpRead, int64(len(p)), func(t *Table) error { return t.ReadAt(ctx, p, off) })
}

// SpliceRead moves length bytes at off from the live table into pipe (see
// Table.SpliceTo); it counts as a read.
func (d *Device) SpliceRead(ctx context.Context, pipe int, off, length int64) error {
	return d.io(ctx, OpRead, length, func(t *Table) error { return t.SpliceTo(ctx, pipe, off, length) })
}

// WriteAt writes p at off.
func (d *Device) WriteAt(ctx context.Context, p []byte, off int64) error {
	return d.WriteAtFlags(ctx, p, off, 0)
}

// WriteAtFlags writes p at off with flags: with targets.FUA the data is
// durable when it returns, made so by the targets it reaches (a sync of
// their devices), not by a flush of the whole table.
func (d *Device) WriteAtFlags(ctx context.Context, p []byte, off int64, flags targets.WriteFlags) error {
	if d.readOnly {
		return ErrReadOnly
	}
	return d.io(ctx, OpWrite, int64(len(p)), func(t *Table) error { return t.WriteAt(ctx, p, off, flags) })
}

// Flush serves a client's FLUSH: completed writes become durable, on the
// live table (whose targets see the request: Table.FlushRequest), and on
// the old tables of live swaps that are still draining.
func (d *Device) Flush(ctx context.Context) error {
	return d.io(ctx, OpFlush, 0, func(t *Table) error {
		return errors.Join(t.FlushRequest(ctx), d.flushRetiring(ctx), d.takeLostFlush())
	})
}

// Sync makes completed writes durable as Flush does, on the server's own
// behalf (a client's disconnect): the targets that act on clients' FLUSH
// requests (targets.FlushRequester: a log that records them, a fault
// injector that fails them) do not see it, and the device's statistics do
// not count it, as they count the requests clients sent.
func (d *Device) Sync(ctx context.Context) error {
	t, err := d.Get(ctx)
	if err != nil {
		return err
	}
	defer t.Put()
	return errors.Join(t.Flush(ctx), d.flushRetiring(ctx))
}

// Trim discards a range.
func (d *Device) Trim(ctx context.Context, off, length int64) error {
	if d.readOnly {
		return ErrReadOnly
	}
	return d.io(ctx, OpTrim, length, func(t *Table) error { return t.Trim(ctx, off, length) })
}

// Zero makes a range read as zeros.
func (d *Device) Zero(ctx context.Context, off, length int64, flags targets.ZeroFlags) error {
	if d.readOnly {
		return ErrReadOnly
	}
	return d.io(ctx, OpZero, length, func(t *Table) error { return t.Zero(ctx, off, length, flags) })
}

// Extents reports allocation of a range (see Table.Extents).
func (d *Device) Extents(ctx context.Context, off, length int64, emit func(targets.Extent) bool) error {
	return d.io(ctx, OpBlockStatus, length, func(t *Table) error { return t.Extents(ctx, off, length, emit) })
}
