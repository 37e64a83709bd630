package table

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"

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
	// lostFlush is the failure of a retired table's last flush (at its
	// destroy, after a live swap), kept for the next FLUSH: the writes the
	// old table answered may not be durable, and a FLUSH that reaches only
	// the new table must not say they are. Reported once, as Linux
	// reports a writeback error to the next fsync.
	lostFlush atomic.Pointer[error]

	evMu sync.Mutex    // guards evCh
	evCh chan struct{} // closed at the next event (events.go)
}

// DeviceCounters are a device's running statistics.
type DeviceCounters struct {
	IO         OpCounters
	Latency    [NumOps]Histogram // kept only when the device times I/O
	Generation atomic.Uint64     // grows on every swap of the live table
	Events     atomic.Uint64     // dm's event number: target events and renames (events.go)
	Swaps      atomic.Uint64
	LoadFails  atomic.Uint64 // tables refused by LoadText
	Destroying atomic.Int64  // tables waiting for their holders to drain
	DrainWait  Histogram     // how long each destroy waited
	Async      atomic.Uint64 // requests started asynchronously (device_async.go)
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
// now on. It is an event if the device has a live table, as dm's
// dm_hash_rename raises one on it (to wake dmsetup wait).
func (d *Device) Rename(name string) {
	d.name.Store(&name)
	if d.live.Load() != nil {
		d.event()
	}
}

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
	var n int64
	_ = d.View(Live, func(t *Table) error { n = t.Size(); return nil })
	return n
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

// Close destroys both tables, flushing the live one; later I/O fails with
// ErrClosed. I/O waiting on a suspended device is released and fails.
// In-flight I/O completes first. A live table that was running is
// suspended (PreSuspend now, PostSuspend once drained) before its
// destructor, as dm's destroy does.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.wakeEventWaiters() // a waiter then finds the device gone
	live := d.live.Swap(nil)
	inactive := d.inactive.Swap(nil)
	if live != nil {
		live.devs.SetEventFunc(nil)
	}
	d.releaseGateLocked()
	var errs []error
	if inactive != nil {
		errs = append(errs, d.destroyTable(inactive, false))
	}
	if live != nil {
		live.presuspend(context.Background()) // its in-flight I/O completes
		errs = append(errs, d.destroyTable(live, true))
	}
	return errors.Join(errs...)
}
