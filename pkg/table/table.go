package table

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gdm-project/gdm/pkg/btree"
	"github.com/gdm-project/gdm/pkg/targets"
)

// ErrOutOfRange is a read, trim or block-status request that reaches past
// the end of the table; ErrNoSpace is a write or write-zeroes that does
// (ENOSPC, as the NBD spec asks of those two). A client that negotiated a
// larger size before the table shrank sees them.
var (
	ErrOutOfRange = fmt.Errorf("table: request past the end of the device: %w", syscall.EINVAL)
	ErrNoSpace    = fmt.Errorf("table: write past the end of the device: %w", syscall.ENOSPC)
)

// drainBias is added to holders by whoever waits for them to drain (destroy,
// or the quiesce of a suspend). Put sees a count at or above it and knows a
// waiter needs waking; below it Put pays for nothing but its atomic add.
const drainBias = int64(1) << 40

// Table is an immutable mapping of a device's sectors onto targets.
//
// Its lifetime follows the seed's rules: see the package doc. Get/Put are
// for temporary holders; Destroy is for Device only.
type Table struct {
	lines   []Line
	targets []targets.Target
	starts  []int64 // byte offset of each target, plus the end as a last entry
	index   *btree.Index
	devs    *targets.DevSet
	stats   []SegmentStats

	holders    atomic.Int64
	wake       chan struct{} // capacity 1: a token from the Put that drained holders
	destroying atomic.Bool
	destroyed  atomic.Bool
	// closeMu lets flushRetired sync the files of a table being destroyed
	// without racing the close.
	closeMu sync.RWMutex
}

// Options are how a table opens its backing devices.
type Options struct {
	// ReadOnly opens every backing device read-only.
	ReadOnly bool
	// Open bounds and restricts each open: timeout, allowed prefixes, and
	// the identities recorded when the table was first loaded.
	Open targets.OpenOptions
}

// New builds a table from parsed lines, opening each backing path once. A
// device that cannot be opened or is too small is refused as a *LineError,
// with everything opened so far closed again.
func New(lines []Line, readOnly bool) (*Table, error) {
	return NewWith(lines, Options{ReadOnly: readOnly})
}

// NewWith is New with the open options spelled out.
func NewWith(lines []Line, opts Options) (*Table, error) {
	if len(lines) == 0 {
		return nil, fmt.Errorf("table: %w", ErrEmpty)
	}
	t := &Table{
		lines:   lines,
		targets: make([]targets.Target, len(lines)),
		starts:  make([]int64, len(lines)+1),
		devs:    targets.NewDevSetWith(opts.ReadOnly, opts.Open),
		stats:   make([]SegmentStats, len(lines)),
		wake:    make(chan struct{}, 1),
	}
	lasts := make([]uint64, len(lines))
	var next uint64
	for i, l := range lines {
		if l.Start != next || l.Length == 0 || l.Length > maxSectors-l.Start {
			t.devs.Close()
			return nil, &LineError{Line: l.LineNo, Err: fmt.Errorf("%w: targets must start at 0 and adjoin", ErrGap)}
		}
		typ, err := targets.Lookup(l.Type)
		if err == nil {
			t.targets[i], err = typ.New(l.Args, l.Length, t.devs)
		}
		if err != nil {
			t.devs.Close()
			return nil, &LineError{Line: l.LineNo, Err: fmt.Errorf("%s: %w", l.Type, err)}
		}
		t.starts[i] = int64(l.Start) * targets.SectorSize
		lasts[i] = l.Start + l.Length - 1
		next = l.Start + l.Length
	}
	t.starts[len(lines)] = int64(next) * targets.SectorSize
	var err error
	if t.index, err = btree.Build(lasts); err != nil {
		t.devs.Close()
		return nil, fmt.Errorf("table: %w", err)
	}
	return t, nil
}

// Parse and New in one step.
func FromText(text string, readOnly bool) (*Table, error) {
	return FromTextWith(text, Options{ReadOnly: readOnly})
}

// FromTextWith is Parse and NewWith in one step.
func FromTextWith(text string, opts Options) (*Table, error) {
	lines, err := Parse(text)
	if err != nil {
		return nil, err
	}
	return NewWith(lines, opts)
}

// Identities maps each backing path, as written in the table, to the
// identity of the file or device it opened. A daemon persists it with the
// table and passes it back as Options.Open.Expect when it opens the table
// again, so that a path replaced meanwhile is refused.
func (t *Table) Identities() map[string]targets.Identity {
	ids := map[string]targets.Identity{}
	for _, d := range t.devs.Devs() {
		ids[d.Path()] = d.Identity()
	}
	return ids
}

// Lines returns the table's lines (callers must not modify them).
func (t *Table) Lines() []Line { return t.lines }

// Text is the canonical table text.
func (t *Table) Text() string { return Format(t.lines) }

// Size is the table's size in bytes.
func (t *Table) Size() int64 { return t.starts[len(t.starts)-1] }

// Sectors is the table's size in sectors.
func (t *Table) Sectors() uint64 { return uint64(t.Size() / targets.SectorSize) }

// Devs is the table's backing devices.
func (t *Table) Devs() *targets.DevSet { return t.devs }

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

// Status returns each target's status text (dm's STATUSTYPE_INFO), in order.
func (t *Table) Status() []string {
	out := make([]string, len(t.targets))
	for i, tg := range t.targets {
		out[i] = tg.Status()
	}
	return out
}

// get takes a temporary reference. Device.Get wraps it with the checks that
// make it race-free against a swap.
func (t *Table) get() { t.holders.Add(1) }

// Put gives back a reference taken by Device.Get or Device.Acquire. It never
// destroys the table: when a destroyer is waiting and this was the last
// holder, it wakes the destroyer. A Put without a Get panics.
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

// destroy waits for every holder to go, then (with flush) syncs and closes
// the backing devices. Called only by Device at its fixed points, once per
// table.
func (t *Table) destroy(log *slog.Logger, flush bool) (time.Duration, error) {
	if !t.destroying.CompareAndSwap(false, true) {
		panic("table: destroyed twice")
	}
	if h := destroyHook.Load(); h != nil {
		(*h)(t)
	}
	// Not cancellable: closing files under a holder is what must never be.
	waited, _ := t.drain(context.Background(), log, "destroy")
	var ferr error
	if flush {
		if ferr = t.Flush(); ferr != nil {
			ferr = fmt.Errorf("table: flush before destroy: %w", ferr)
		}
	}
	t.closeMu.Lock()
	t.destroyed.Store(true)
	cerr := t.devs.Close()
	t.closeMu.Unlock()
	return waited, errors.Join(ferr, cerr)
}

// flushRetired flushes a table that has left the live slot but may still
// be draining: its files are open until destroy closes them, and destroy
// flushes before it closes, so a destroyed table needs nothing.
func (t *Table) flushRetired() error {
	t.closeMu.RLock()
	defer t.closeMu.RUnlock()
	if t.destroyed.Load() {
		return nil
	}
	return t.Flush()
}

// ReadAt reads len(p) bytes at off, splitting at target boundaries.
func (t *Table) ReadAt(p []byte, off int64) error { return t.rw(p, off, OpRead) }

// WriteAt writes p at off, splitting at target boundaries.
func (t *Table) WriteAt(p []byte, off int64) error { return t.rw(p, off, OpWrite) }

// rw splits p at target boundaries; each piece is a slice of the caller's
// buffer, so data is never copied here. A read stops at its first failed
// piece; a write goes on to the rest and returns the first error, as dm
// does (it submits every target's clone of a bio, whichever fails): the
// oracle saw a write across an error and a linear target leave the linear
// part unwritten in gdm and written in dm.
func (t *Table) rw(p []byte, off int64, op Op) error {
	if err := t.check(off, int64(len(p)), op); err != nil {
		return err
	}
	var first error
	for len(p) > 0 {
		i, tOff, n := t.locate(off, int64(len(p)))
		var err error
		if op == OpWrite {
			err = t.targets[i].WriteAt(p[:n], tOff)
		} else {
			err = t.targets[i].ReadAt(p[:n], tOff)
		}
		t.stats[i].record(op, n, err)
		if err != nil && op != OpWrite {
			return err
		}
		first = cmp.Or(first, err)
		p = p[n:]
		off += n
	}
	return first
}

// SpliceTo moves [off, off+n) into pipe without copying it through user
// space, target by target (see targets.Target.SpliceTo). After an error
// the pipe holds part of the range.
func (t *Table) SpliceTo(pipe int, off, n int64) error {
	return t.each(off, n, OpRead, func(tg targets.Target, tOff, m int64) error { return tg.SpliceTo(pipe, tOff, m) })
}

// Trim discards [off, off+length) on every target it covers.
func (t *Table) Trim(off, length int64) error {
	return t.each(off, length, OpTrim, func(tg targets.Target, tOff, n int64) error { return tg.Trim(tOff, n) })
}

// Zero makes [off, off+length) read as zeros.
func (t *Table) Zero(off, length int64, flags targets.ZeroFlags) error {
	return t.each(off, length, OpZero, func(tg targets.Target, tOff, n int64) error { return tg.Zero(tOff, n, flags) })
}

// Flush makes every completed write durable: each backing device of the
// table is synced once, however many targets use it.
func (t *Table) Flush() error {
	if h := flushHook.Load(); h != nil {
		if err := (*h)(t); err != nil {
			return err
		}
	}
	return t.devs.Sync()
}

// flushHook, when set, runs at the start of every Flush; an error from it
// fails the flush. Tests use it to see which tables are flushed, and when.
var flushHook atomic.Pointer[func(*Table) error]

// Extents reports allocation of [off, off+length), calling emit per run in
// order until it returns false.
func (t *Table) Extents(off, length int64, emit func(targets.Extent) bool) error {
	more := true
	guard := func(e targets.Extent) bool {
		more = emit(e)
		return more
	}
	return t.each(off, length, OpBlockStatus, func(tg targets.Target, tOff, n int64) error {
		if !more {
			return errStop
		}
		return tg.Extents(tOff, n, guard)
	})
}

var errStop = errors.New("stop")

// each splits [off, off+length) at target boundaries and calls fn per piece.
func (t *Table) each(off, length int64, op Op, fn func(tg targets.Target, tOff, n int64) error) error {
	if err := t.check(off, length, op); err != nil {
		return err
	}
	var first error
	for length > 0 {
		i, tOff, n := t.locate(off, length)
		err := fn(t.targets[i], tOff, n)
		if err == errStop {
			return nil
		}
		if err == targets.ErrPipeFull {
			return err // not done: the caller reads the ordinary way, counted then
		}
		t.stats[i].record(op, n, err)
		if err != nil && op != OpTrim && op != OpZero {
			return err
		}
		first = cmp.Or(first, err) // trim and zero go on, as writes do (see rw)
		off += n
		length -= n
	}
	return first
}

// check refuses a range that is not inside the table, with the error op's
// kind of request gets (see ErrNoSpace).
func (t *Table) check(off, length int64, op Op) error {
	if off >= 0 && length >= 0 && off <= t.Size() && length <= t.Size()-off {
		return nil
	}
	if op == OpWrite || op == OpZero {
		return ErrNoSpace
	}
	return ErrOutOfRange
}

// locate finds the target holding byte off and how much of [off, off+n)
// it holds. off must be inside the table.
func (t *Table) locate(off, n int64) (i int, tOff, m int64) {
	i, _ = t.index.Lookup(uint64(off) / targets.SectorSize)
	return i, off - t.starts[i], min(n, t.starts[i+1]-off)
}

// Targets returns the table's targets (for per-target statistics).
func (t *Table) Targets() []targets.Target { return t.targets }
