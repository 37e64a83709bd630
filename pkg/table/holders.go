package table

// The holder mechanism, in one file: how a table is held (get, Put, Get,
// View), how its destroyer waits for the holders to go (drain), and the one
// way a table is destroyed (destroy, reached only through
// Device.destroyTable at the fixed points the package doc lists).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// drainBias is added to holders by whoever waits for them to drain (destroy,
// or the quiesce of a suspend). Put sees a count at or above it and knows a
// waiter needs waking; below it Put pays for nothing but its atomic add.
const drainBias = int64(1) << 40

// Holders is the number of temporary holders now.
func (t *Table) Holders() int64 {
	n := t.holders.Load()
	if n >= drainBias-1 {
		n -= drainBias
	}
	return n
}

// Destroyed reports whether Destroy has closed the table.
func (t *Table) Destroyed() bool { return t.destroyed.Load() }

// get takes a temporary reference. Device.Get wraps it with the checks that
// make it race-free against a swap.
func (t *Table) get() { t.holders.Add(1) }

// Put gives back a reference taken by Device.Get. It never destroys the
// table: when a destroyer is waiting and this was the last holder, it wakes
// the destroyer. A Put without a Get panics.
func (t *Table) Put() {
	n := t.holders.Add(-1)
	// One unsigned compare covers the usual case: 0 <= n < drainBias-1.
	if uint64(n) < uint64(drainBias-1) {
		return
	}
	t.putSlow(n)
}

func (t *Table) putSlow(n int64) {
	switch {
	case n < 0 || n == drainBias-1:
		panic(fmt.Sprintf("table: holders underflow: Put without Get (count %d)", n))
	case n == drainBias: // the last holder, with a drainer waiting
		select {
		case t.wake <- struct{}{}:
		default: // a token is already there
		}
	}
}

// drain waits until no temporary holder remains, and leaves the bias in
// holders so that the waiter can be woken again. Long waits are logged with
// the count still held; the log timer is for the log only, the wake-up is the
// last Put's. It returns false if ctx ended first (with the bias removed).
func (t *Table) drain(ctx context.Context, log *slog.Logger, what string) (time.Duration, bool) {
	start := time.Now()
	if t.holders.Add(drainBias) == drainBias {
		return 0, true
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for t.holders.Load() != drainBias {
		select {
		case <-t.wake:
		case <-tick.C:
			log.Warn("table drain is taking long", "waiting_for", what,
				"holders", t.Holders(), "waited", time.Since(start).Round(time.Millisecond))
		case <-ctx.Done():
			t.undrain()
			return time.Since(start), false
		}
	}
	return time.Since(start), true
}

// undrain removes the bias added by drain (after a quiesce).
func (t *Table) undrain() { t.holders.Add(-drainBias) }

// destroyHook, when set, is called at the start of every destroy, on the
// destroying goroutine. Tests use it to prove where destruction happens.
var destroyHook atomic.Pointer[func(*Table)]

// SetDestroyHook installs (or, with nil, removes) the destroy hook. For
// tests only.
func SetDestroyHook(f func(*Table)) {
	if f == nil {
		destroyHook.Store(nil)
		return
	}
	destroyHook.Store(&f)
}

// destroy waits for every holder to go, then (with flush) flushes, ends a
// table that was live with its suspend hooks, calls the targets'
// destructors and closes the backing devices. Called only by
// Device.destroyTable at its fixed points (and by tests on tables in no
// device), once per table: a second call panics.
func (t *Table) destroy(log *slog.Logger, flush bool) (time.Duration, error) {
	if !t.destroying.CompareAndSwap(false, true) {
		panic("table: destroyed twice")
	}
	if h := destroyHook.Load(); h != nil {
		(*h)(t)
	}
	// Not cancellable: closing files under a holder is what must never be.
	ctx := context.Background()
	waited, _ := t.drain(ctx, log, "destroy")
	var ferr error
	if flush {
		if ferr = t.Flush(ctx); ferr != nil {
			ferr = fmt.Errorf("table: flush before destroy: %w", ferr)
		}
	}
	// From here on the targets end: a retired table's FLUSH (flushRetired)
	// that has begun finishes first, and none reaches them after; the
	// flush above covered every write the table took, and a later FLUSH
	// gets its result.
	t.closeMu.Lock()
	t.ending, t.endFlush = true, ferr
	t.closeMu.Unlock()
	t.postsuspend(ctx) // a no-op unless the table was live until now
	derr := t.destructTargets()
	cerr := t.devs.Close()
	t.destroyed.Store(true)
	return waited, errors.Join(ferr, derr, cerr)
}

// lastFlush is the result of the flush at t's destroy (nil before it).
func (t *Table) lastFlush() error {
	t.closeMu.Lock()
	defer t.closeMu.Unlock()
	return t.endFlush
}

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

// Slot names one of a device's two table slots.
type Slot uint8

// The slots.
const (
	Live Slot = iota
	Inactive
)

func (s Slot) String() string {
	if s == Inactive {
		return "inactive"
	}
	return "live"
}

// View calls fn with the table in slot, held for the call and given back
// when it returns (or panics): status, metrics, the table text. It does not
// wait for a suspended device. Without a table in the slot it returns
// ErrNoTable (errors.Is) and does not call fn; else it returns fn's error.
// fn must not keep the table after it returns.
func (d *Device) View(slot Slot, fn func(*Table) error) error {
	t := d.acquire(slot)
	if t == nil {
		return fmt.Errorf("table: %s: no table in the %s slot (%w)", d.Name(), slot, ErrNoTable)
	}
	defer t.Put()
	return fn(t)
}

// acquire returns the table in slot with a holder counted, or nil for an
// empty slot: View's half that holds, and tests' (which hold across steps).
func (d *Device) acquire(slot Slot) *Table {
	p := &d.live
	if slot == Inactive {
		p = &d.inactive
	}
	for {
		t := p.Load()
		if t == nil {
			return nil
		}
		t.get()
		if p.Load() == t {
			return t
		}
		t.Put()
	}
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
