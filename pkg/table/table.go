package table

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

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
	// ErrUnaligned is a read, write, trim or write-zeroes that is not whole
	// logical blocks of a table whose blocks are larger than 512 bytes
	// (LogicalBlockSize, which the export advertises as its minimum): the
	// kernel's block layer refuses such a bio to a dm device with EINVAL
	// before dm sees it, and so does the table, before a target or a
	// backing device does (a remote leg refusing it would count an error
	// against the leg).
	ErrUnaligned = fmt.Errorf("table: request not aligned to the table's logical block size: %w", syscall.EINVAL)
)

// Table is an immutable mapping of a device's sectors onto targets.
//
// Its lifetime follows the seed's rules: see the package doc and
// holders.go. Device.Get/View and Put are for temporary holders; destroy is
// for Device only.
type Table struct {
	lines   lineStore
	targets []targets.Target
	starts  []int64 // byte offset of each target, plus the end as a last entry
	index   *btree.Index
	devs    *targets.DevSet
	stats   segStats

	holders    atomic.Int64
	wake       chan struct{} // capacity 1: a token from the Put that drained holders
	destroying atomic.Bool
	destroyed  atomic.Bool
	// closeMu lets flushRetired flush a table being destroyed without
	// racing the end of its targets: ending is set under it, by destroy,
	// before the suspend hooks, destructors and close, with endFlush the
	// result of destroy's last flush.
	closeMu  sync.RWMutex
	ending   bool  // guarded by closeMu
	endFlush error // guarded by closeMu

	// phase is where the table is in its life (lifecycle.go), guarded by
	// the device's mu.
	phase phase
	// tr is what the targets give as a whole, found once (traits.go).
	tr traits
	// devCaps is what the targets' devices take, found as they were
	// made (devcaps.go).
	devCaps devCaps
	// blockMask is LogicalBlockSize-1 when that is above 512, else 0:
	// check refuses I/O that is not whole blocks (ErrUnaligned).
	blockMask int64
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
	b := newBuilder(len(lines))
	if err := b.addLines(lines); err != nil {
		return nil, err
	}
	return b.build(opts)
}

// Parse and New in one step.
func FromText(text string, readOnly bool) (*Table, error) {
	return FromTextWith(text, Options{ReadOnly: readOnly})
}

// FromTextWith is Parse and NewWith in one step, without making the Lines:
// the text goes straight into the table's compact form (see build.go).
func FromTextWith(text string, opts Options) (*Table, error) {
	b := newBuilder(targetsAtMost(text))
	if err := b.parse(text); err != nil {
		return nil, err
	}
	return b.build(opts)
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

// Size is the table's size in bytes.
func (t *Table) Size() int64 { return t.starts[len(t.starts)-1] }

// Sectors is the table's size in sectors.
func (t *Table) Sectors() uint64 { return uint64(t.Size() / targets.SectorSize) }

// Devs is the table's backing devices.
func (t *Table) Devs() *targets.DevSet { return t.devs }

// Status returns each target's status text (dm's STATUSTYPE_INFO), in order:
// StatusOf(targets.StatusInfo).
func (t *Table) Status() []string { return t.StatusOf(targets.StatusInfo) }

// StatusOf returns each target's status text of the given type, in order.
// The TABLE form is the line's canonical args unless the target gives
// another (see targets.Target.Status).
func (t *Table) StatusOf(typ targets.StatusType) []string {
	out := make([]string, len(t.targets))
	for i, tg := range t.targets {
		out[i] = t.statusOf(i, tg, typ)
	}
	return out
}

// statusOf is target i's status text of the given type.
func (t *Table) statusOf(i int, tg targets.Target, typ targets.StatusType) string {
	s := tg.Status(typ)
	if s == "" && typ == targets.StatusTable {
		return t.argsOf(i)
	}
	return s
}

// argsOf is line i's args as the table keeps them.
func (t *Table) argsOf(i int) string {
	part := t.lines.part(i)
	if sp := strings.IndexByte(part, ' '); sp >= 0 {
		return part[sp+1:]
	}
	return ""
}

// flushRetired flushes a table that has left the live slot but may still
// be draining: its files are open until destroy closes them, and destroy
// flushes after the drain, before its targets end, so a table whose
// targets are ending needs no flush, and must get none (see destroy): its
// answer is that last flush's.
func (t *Table) flushRetired(ctx context.Context) error {
	t.closeMu.RLock()
	defer t.closeMu.RUnlock()
	if t.ending {
		return t.endFlush
	}
	return t.Flush(ctx)
}

// ReadAt reads len(p) bytes at off, splitting at target boundaries.
func (t *Table) ReadAt(ctx context.Context, p []byte, off int64) error {
	return t.rw(ctx, p, off, OpRead, 0)
}

// WriteAt writes p at off, splitting at target boundaries; each
// target gets flags (FUA: each piece is durable when its target returns).
func (t *Table) WriteAt(ctx context.Context, p []byte, off int64, flags targets.WriteFlags) error {
	return t.rw(ctx, p, off, OpWrite, flags)
}

// rw splits p at target boundaries; each piece is a slice of the caller's
// buffer, so data is never copied here. A read or a write goes on to the
// rest after a failed piece and returns the first error, as dm does (it
// submits every target's clone of a bio, whichever fails): the oracle saw
// a write across an error and a linear target leave the linear part
// unwritten in gdm and written in dm; and each failed piece of a read
// reaches its target, as dm's end_io does (a striped target after the
// failed one turns D too).
func (t *Table) rw(ctx context.Context, p []byte, off int64, op Op, flags targets.WriteFlags) error {
	if err := t.check(off, int64(len(p)), op); err != nil {
		return err
	}
	var first error
	for len(p) > 0 {
		i, tOff, n := t.locate(off, int64(len(p)))
		var err error
		if op == OpWrite {
			err = t.targets[i].WriteAt(ctx, p[:n], tOff, flags)
		} else {
			err = t.targets[i].ReadAt(ctx, p[:n], tOff)
		}
		t.stats.record(i, op, n, err)
		first = cmp.Or(first, err)
		p = p[n:]
		off += n
	}
	return first
}

// ErrNoDiscard is a discard to a table that takes none (SupportsDiscard):
// the kernel's block layer refuses it to such a dm device before dm sees
// it. Only a client that was offered TRIM before a reload to such a table
// sends one (the export offers none to a later one).
var ErrNoDiscard = fmt.Errorf("table: the table takes no discards: %w", syscall.EOPNOTSUPP)

// Trim discards [off, off+length) on every target it covers, or refuses
// it whole (ErrNoDiscard) on a table that takes no discards.
func (t *Table) Trim(ctx context.Context, off, length int64) error {
	if !t.SupportsDiscard() {
		return ErrNoDiscard
	}
	return t.each(off, length, OpTrim, func(tg targets.Target, tOff, n int64) error { return tg.Trim(ctx, tOff, n) })
}

// Zero makes [off, off+length) read as zeros.
func (t *Table) Zero(ctx context.Context, off, length int64, flags targets.ZeroFlags) error {
	return t.each(off, length, OpZero, func(tg targets.Target, tOff, n int64) error { return tg.Zero(ctx, tOff, n, flags) })
}

// Flush makes every completed write durable: each backing device of
// the table is synced once, however many targets use it, and then every
// target with a Flush of its own (targets.Flusher) is flushed, in table
// order; a failed sync stops there (a target's flush may record that the
// data before it is durable).
func (t *Table) Flush(ctx context.Context) error { return t.flush(ctx, nil) }

// flush is Flush; failed, when not nil, is told of each device whose sync
// failed (see flushFailed).
func (t *Table) flush(ctx context.Context, failed func(*targets.Dev, error)) error {
	if h := flushHook.Load(); h != nil {
		if err := (*h)(t); err != nil {
			return err
		}
	}
	if err := t.devs.SyncEach(ctx, failed); err != nil {
		return err
	}
	var errs []error
	for _, f := range t.traits().flushers {
		errs = append(errs, f.Flush(ctx))
	}
	return errors.Join(errs...)
}

// FlushRequest serves a client's FLUSH: every target that acts on one
// (targets.FlushRequester) gets it first, in table order, then the table
// is flushed as at any other point. A target's error fails the request,
// but the sync still runs: the other targets' writes are made durable, as
// dm's other clones of the flush bio still reach their devices.
func (t *Table) FlushRequest(ctx context.Context) error {
	var errs []error
	for _, r := range t.traits().requesters {
		errs = append(errs, r.FlushRequest(ctx))
	}
	return errors.Join(append(errs, t.flush(ctx, t.flushFailed(ctx)))...)
}

// flushFailed returns what tells the targets that count failed flushes
// (targets.FlushCounter: striped) of a device whose sync failed while
// serving a FLUSH request, or nil when the table has none. A failure that
// is only ctx's end (the client gone, a verb's timeout) is not the
// device's: dm's flush bios have no such end.
func (t *Table) flushFailed(ctx context.Context) func(*targets.Dev, error) {
	counters := t.traits().counters
	if len(counters) == 0 {
		return nil
	}
	return func(d *targets.Dev, err error) {
		if end := ctx.Err(); end != nil && errors.Is(err, end) {
			return
		}
		for _, c := range counters {
			c.FlushFailed(d, err)
		}
	}
}

// flushHook, when set, runs at the start of every Flush; an error from it
// fails the flush. Tests use it to see which tables are flushed, and when.
var flushHook atomic.Pointer[func(*Table) error]

// Extents reports allocation of [off, off+length), calling emit per
// run in order until it returns false.
func (t *Table) Extents(ctx context.Context, off, length int64, emit func(targets.Extent) bool) error {
	more := true
	guard := func(e targets.Extent) bool {
		more = emit(e)
		return more
	}
	return t.each(off, length, OpBlockStatus, func(tg targets.Target, tOff, n int64) error {
		if !more {
			return errStop
		}
		return tg.Extents(ctx, tOff, n, guard)
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
		t.stats.record(i, op, n, err)
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
		if (off|length)&t.blockMask != 0 && op != OpBlockStatus {
			return ErrUnaligned
		}
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
