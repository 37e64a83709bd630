package table

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gdm-project/gdm/pkg/targets"
)

// Errors of Device operations.
var (
	ErrClosed   = fmt.Errorf("table: device removed: %w", syscall.ENXIO)
	ErrNoTable  = fmt.Errorf("table: device has no live table: %w", syscall.ENXIO)
	ErrReadOnly = fmt.Errorf("table: device is read-only: %w", syscall.EPERM)
)

// Device is a named mapped device with a live and an inactive table slot.
//
// Control operations (Load, Resume, Suspend, Clear, Close) serialize on mu.
// The I/O path takes no lock: Get reads the live slot and the suspend gate
// atomically and re-checks them after counting itself a holder, which is what
// makes it race-free against a swap (see Get).
type Device struct {
	name     atomic.Pointer[string] // changes on Rename
	readOnly bool
	baseLog  *slog.Logger

	mu        sync.Mutex  // serializes control operations
	suspended atomic.Bool // written under mu; read by anyone
	closed    bool        // guarded by mu

	live     atomic.Pointer[Table]
	inactive atomic.Pointer[Table]
	// gate is non-nil while I/O must wait (suspended, or quiescing for a
	// swap); it is closed to release the waiters.
	gate atomic.Pointer[chan struct{}]

	// timeIO turns on the latency histograms. Reading the clock twice costs
	// about 40 ns an I/O, 8% of a 4 KiB read from tmpfs, so it is for those
	// who export metrics.
	timeIO atomic.Bool
	stats  DeviceCounters

	// retiring holds old tables of live swaps until they are destroyed:
	// Flush syncs them too, so a FLUSH that reaches the new table covers
	// writes answered through the old one. Replaced whole under mu, read
	// without a lock.
	retiring atomic.Pointer[[]*Table]
}

// DeviceCounters are a device's running statistics.
type DeviceCounters struct {
	IO         OpCounters
	Latency    [NumOps]Histogram // kept only when the device times I/O
	Generation atomic.Uint64     // grows on every swap of the live table
	Events     atomic.Uint64     // dm's event number: loads, swaps, clears, suspends
	Swaps      atomic.Uint64
	LoadFails  atomic.Uint64 // tables refused by LoadText
	Destroying atomic.Int64  // tables waiting for their holders to drain
	DrainWait  Histogram     // how long each destroy waited
}

// NewDevice makes a device with no tables. readOnly refuses writes and opens
// backing devices read-only.
func NewDevice(name string, readOnly bool, log *slog.Logger) *Device {
	if log == nil {
		log = slog.Default()
	}
	d := &Device{readOnly: readOnly, baseLog: log}
	d.name.Store(&name)
	return d
}

// Rename gives the device a new name, for its errors and log lines from
// now on.
func (d *Device) Rename(name string) { d.name.Store(&name) }

// log is the device's logger, naming it as it is called now.
func (d *Device) log() *slog.Logger { return d.baseLog.With("device", d.Name()) }

// TimeIO turns the per-op latency histograms on or off.
func (d *Device) TimeIO(on bool) { d.timeIO.Store(on) }

// Name is the device's name.
func (d *Device) Name() string { return *d.name.Load() }

// ReadOnly reports whether the device refuses writes.
func (d *Device) ReadOnly() bool { return d.readOnly }

// Stats gives access to the device's counters (read them, don't write).
func (d *Device) Stats() *DeviceCounters { return &d.stats }

// Get returns the live table with a holder counted, for one I/O; the caller
// must Put it. While the device is suspended it waits (or returns ctx's
// error). It never returns a table that has begun destroying: it counts
// itself a holder first and only then checks that the table is still live
// and no gate is up. A swap stores the new table before draining the old
// one, so either this check sees the swap, or the drain sees this holder.
func (d *Device) Get(ctx context.Context) (*Table, error) {
	for {
		t := d.live.Load()
		if t == nil {
			return nil, d.goneErr()
		}
		ok, gate := d.tryGet(t)
		if ok {
			return t, nil
		}
		if gate != nil {
			select {
			case <-*gate:
			case <-ctx.Done():
				return nil, fmt.Errorf("table: waiting for resume of %s: %w", d.Name(), ctx.Err())
			}
		}
	}
}

// tryGet counts a holder on t, just read from the live slot, and keeps it
// only if t is still live and no gate is up; else it gives it back and
// returns the gate, if any, to wait on.
func (d *Device) tryGet(t *Table) (bool, *chan struct{}) {
	t.get()
	gate := d.gate.Load()
	if gate == nil && d.live.Load() == t {
		return true, nil
	}
	t.Put()
	return false, gate
}

// Acquire returns the live table (or the inactive one) with a holder
// counted, without waiting for a suspended device: for status and metrics.
// It returns nil if the slot is empty. The caller must Put a non-nil table.
func (d *Device) Acquire(inactive bool) *Table {
	slot := &d.live
	if inactive {
		slot = &d.inactive
	}
	for {
		t := slot.Load()
		if t == nil {
			return nil
		}
		t.get()
		if slot.Load() == t {
			return t
		}
		t.Put()
	}
}

func (d *Device) goneErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	return ErrNoTable
}

// Size is the live table's size in bytes (0 without one).
func (d *Device) Size() int64 {
	t := d.Acquire(false)
	if t == nil {
		return 0
	}
	defer t.Put()
	return t.Size()
}

// LoadText parses and builds a table and puts it in the inactive slot. A bad
// table is refused (counted in LoadFails) and the device keeps what it had.
func (d *Device) LoadText(text string) error {
	t, err := d.Build(text, targets.OpenOptions{})
	if err != nil {
		return err
	}
	if err := d.Load(t); err != nil {
		d.Discard(t)
		return err
	}
	return nil
}

// Build parses and builds a table for this device (read-only if the device
// is), opening its backing devices with open, in no slot yet: the caller
// Loads it or Discards it. It takes no lock of the device, so parsing and
// opening files never hold up the device's other operations. A bad table
// is counted in LoadFails.
func (d *Device) Build(text string, open targets.OpenOptions) (*Table, error) {
	t, err := FromTextWith(text, Options{ReadOnly: d.readOnly, Open: open})
	if err != nil {
		d.stats.LoadFails.Add(1)
	}
	return t, err
}

// Discard destroys a table from Build that never went into a slot (the
// verb that built it failed later): one of the fixed points at which a
// table may be destroyed.
func (d *Device) Discard(t *Table) { d.destroyTable(t, false) }

// Load puts t in the inactive slot, destroying the table it replaces. The
// device takes over t's one uncounted reference.
func (d *Device) Load(t *Table) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	old := d.inactive.Swap(t)
	d.stats.Events.Add(1)
	if old != nil {
		d.destroyTable(old, false)
	}
	return nil
}

// Clear destroys the inactive table, if any.
func (d *Device) Clear() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if old := d.inactive.Swap(nil); old != nil {
		d.stats.Events.Add(1)
		d.destroyTable(old, false)
	}
	return nil
}

// Suspended reports whether the device is suspended.
func (d *Device) Suspended() bool { return d.suspended.Load() }

// HasInactive reports whether a table waits in the inactive slot.
func (d *Device) HasInactive() bool { return d.inactive.Load() != nil }

// HasLive reports whether the device has a live table.
func (d *Device) HasLive() bool { return d.live.Load() != nil }

// Suspend stops new I/O (it waits in Get), waits for in-flight I/O on the
// live table to complete, then flushes the backing devices unless noflush.
// If ctx ends before in-flight I/O completes, the suspend is undone.
// Suspending a suspended device does nothing.
func (d *Device) Suspend(ctx context.Context, noflush bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if d.suspended.Load() {
		return nil
	}
	if err := d.quiesceLocked(ctx); err != nil {
		return err
	}
	d.suspended.Store(true)
	d.stats.Events.Add(1)
	if t := d.live.Load(); t != nil && !noflush {
		if err := t.Flush(); err != nil {
			return fmt.Errorf("table: suspend %s: flush: %w", d.Name(), err)
		}
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
func (d *Device) Resume(ctx context.Context, live bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	next := d.inactive.Load()
	if next == nil {
		if d.live.Load() == nil {
			return fmt.Errorf("table: resume %s: %w", d.Name(), ErrNoTable)
		}
		if d.suspended.Load() {
			d.suspended.Store(false)
			d.stats.Events.Add(1)
			d.releaseGateLocked()
		}
		return nil
	}
	// A FLUSH after the swap goes to the new table, which may map other
	// files, so writes answered through the old table must be durable by
	// then. With no I/O on the old table (quiesced here, or suspended) it
	// is flushed before the swap, as Suspend does. A live swap retires it
	// instead: FLUSHes sync it too until it is destroyed, and the destroy
	// flushes it when its holders have drained, before its files close.
	quiesced := false
	if !live && !d.suspended.Load() {
		if err := d.quiesceLocked(ctx); err != nil {
			return err
		}
		quiesced = true
	}
	flushOld := true // at its destroy, and retired until then
	if t := d.live.Load(); t != nil && (quiesced || d.suspended.Load()) {
		if err := t.Flush(); err != nil {
			if quiesced {
				d.releaseGateLocked()
			}
			return fmt.Errorf("table: resume %s: flushing the old table: %w (no swap was made)", d.Name(), err)
		}
		flushOld = false
	}
	if old := d.live.Load(); old != nil && flushOld {
		d.retire(old, true) // before the swap: no FLUSH may miss it
	}
	old := d.live.Swap(next)
	d.inactive.Store(nil)
	d.stats.Generation.Add(1)
	d.stats.Swaps.Add(1)
	d.stats.Events.Add(1)
	d.suspended.Store(false)
	d.releaseGateLocked()
	if old != nil {
		d.destroyTable(old, flushOld)
		if flushOld {
			d.retire(old, false)
		}
	}
	return nil
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
func (d *Device) flushRetiring() error {
	p := d.retiring.Load()
	if p == nil {
		return nil
	}
	var errs []error
	for _, t := range *p {
		errs = append(errs, t.flushRetired())
	}
	return errors.Join(errs...)
}

// Close destroys both tables, flushing the live one; later I/O fails with ErrClosed. I/O waiting on
// a suspended device is released and fails. In-flight I/O completes first.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	live := d.live.Swap(nil)
	inactive := d.inactive.Swap(nil)
	d.releaseGateLocked()
	var errs []error
	if inactive != nil {
		errs = append(errs, d.destroyTable(inactive, false))
	}
	if live != nil {
		errs = append(errs, d.destroyTable(live, true))
	}
	return errors.Join(errs...)
}

// destroyTable destroys a table that is in no slot (taken out of one under
// mu, or never loaded). It blocks until the table's holders drain; with
// flush (a table that was live) it then makes their writes durable.
func (d *Device) destroyTable(t *Table, flush bool) error {
	d.stats.Destroying.Add(1)
	waited, err := t.destroy(d.log(), flush)
	d.stats.Destroying.Add(-1)
	d.stats.DrainWait.Observe(waited)
	if waited > time.Second {
		d.log().Info("table destroyed after drain", "waited", waited.Round(time.Millisecond))
	}
	if err != nil {
		d.log().Error("destroying a table", "err", err)
	}
	return err
}

// monoEpoch makes time.Since a cheap monotonic clock: it reads only the
// monotonic counter, where time.Now reads the wall clock too.
var monoEpoch = time.Now()

// io runs one I/O on the live table, counting it.
func (d *Device) io(ctx context.Context, op Op, n int64, fn func(t *Table) error) error {
	timed := d.timeIO.Load()
	var start time.Duration
	if timed {
		start = time.Since(monoEpoch)
	}
	t, err := d.Get(ctx)
	if err == nil {
		err = fn(t)
		t.Put()
	}
	if err == targets.ErrPipeFull {
		return err // not done: the caller reads the ordinary way, counted then
	}
	d.stats.IO.record(op, n, err)
	if timed {
		d.stats.Latency[op].Observe(time.Since(monoEpoch) - start)
	}
	return err
}

// ReadAt reads len(p) bytes at off from the live table.
func (d *Device) ReadAt(ctx context.Context, p []byte, off int64) error {
	return d.io(ctx, OpRead, int64(len(p)), func(t *Table) error { return t.ReadAt(p, off) })
}

// SpliceRead moves length bytes at off from the live table into pipe (see
// Table.SpliceTo); it counts as a read.
func (d *Device) SpliceRead(ctx context.Context, pipe int, off, length int64) error {
	return d.io(ctx, OpRead, length, func(t *Table) error { return t.SpliceTo(pipe, off, length) })
}

// WriteAt writes p at off.
func (d *Device) WriteAt(ctx context.Context, p []byte, off int64) error {
	if d.readOnly {
		return ErrReadOnly
	}
	return d.io(ctx, OpWrite, int64(len(p)), func(t *Table) error { return t.WriteAt(p, off) })
}

// Flush makes completed writes durable: on the live table, and on the old
// tables of live swaps that are still draining.
func (d *Device) Flush(ctx context.Context) error {
	return d.io(ctx, OpFlush, 0, func(t *Table) error { return errors.Join(t.Flush(), d.flushRetiring()) })
}

// Trim discards a range.
func (d *Device) Trim(ctx context.Context, off, length int64) error {
	if d.readOnly {
		return ErrReadOnly
	}
	return d.io(ctx, OpTrim, length, func(t *Table) error { return t.Trim(off, length) })
}

// Zero makes a range read as zeros.
func (d *Device) Zero(ctx context.Context, off, length int64, flags targets.ZeroFlags) error {
	if d.readOnly {
		return ErrReadOnly
	}
	return d.io(ctx, OpZero, length, func(t *Table) error { return t.Zero(off, length, flags) })
}

// Extents reports allocation of a range (see Table.Extents).
func (d *Device) Extents(ctx context.Context, off, length int64, emit func(targets.Extent) bool) error {
	return d.io(ctx, OpBlockStatus, length, func(t *Table) error { return t.Extents(off, length, emit) })
}
