package targets

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// SectorSize is the unit of dm tables.
const SectorSize = 512

// Errors a table line can be refused with. Test with errors.Is.
var (
	ErrUnknownType    = errors.New("unknown target type")
	ErrArgCount       = errors.New("wrong number of arguments")
	ErrNotNumber      = errors.New("not a number")
	ErrNegative       = errors.New("negative number")
	ErrOverflow       = errors.New("number too large")
	ErrDeviceTooSmall = errors.New("backing device too small")
	ErrBadDevice      = errors.New("not a regular file or block device")
	ErrStripes        = errors.New("number of stripes must be positive")
	ErrChunk          = errors.New("chunk size must be positive")
	ErrStripeLength   = errors.New("length not divisible by number of stripes")
	ErrChunkLength    = errors.New("stripe length not divisible by chunk size")
	ErrEmptyPath      = errors.New("empty device path")
)

// Errors of mapped I/O. They wrap errnos so that one function (in the NBD
// layer) can map them to NBD error codes with errors.Is.
var (
	// ErrTargetError is what the error target answers every I/O with.
	ErrTargetError = fmt.Errorf("targets: error target: %w", syscall.EIO)
	// ErrNotSupported answers a zero request that asked to be fast when only
	// the slow way (writing zeros) would do.
	ErrNotSupported = fmt.Errorf("targets: fast zero not supported: %w", syscall.ENOTSUP)
	// ErrShortIO is a backing device that ended before the data did (it was
	// truncated after the table was loaded).
	ErrShortIO = fmt.Errorf("targets: short I/O on backing device: %w", syscall.EIO)
	// ErrNoMessages answers a message to a target that takes none (dm's
	// "Target type does not support messages").
	ErrNoMessages = fmt.Errorf("targets: target type takes no messages: %w", syscall.EINVAL)
)

// ZeroFlags qualify a write-zeroes request.
type ZeroFlags struct {
	// NoHole: the zeroed range must stay allocated (NBD_CMD_FLAG_NO_HOLE).
	NoHole bool
	// Fast: fail with ErrNotSupported rather than write zeros by hand
	// (NBD_CMD_FLAG_FAST_ZERO).
	Fast bool
}

// Extent flags, the same bits as NBD's base:allocation context.
const (
	ExtentHole uint32 = 1 << 0 // unallocated
	ExtentZero uint32 = 1 << 1 // reads as zeros
)

// Extent is one run of a block-status answer.
type Extent struct {
	Length int64
	Flags  uint32
}

// WriteFlags qualify a write.
type WriteFlags uint32

// FUA (force unit access): the write is durable when WriteAt returns, as if
// a flush of just this range followed it (NBD_CMD_FLAG_FUA, REQ_FUA).
const FUA WriteFlags = 1 << 0

// StatusType is which of dm's two status forms is asked for.
type StatusType uint8

const (
	// StatusInfo is dm's STATUSTYPE_INFO: the target's state (`dmsetup
	// status`), often empty.
	StatusInfo StatusType = iota
	// StatusTable is dm's STATUSTYPE_TABLE: the target's args as `dmsetup
	// table` prints them, canonical, with secrets hidden.
	StatusTable
)

// Target is one table line's mapping: the required part of what the
// kernel's struct target_type offers (map and status). Offsets are bytes
// from the target's start; callers keep every range inside the target.
// Implementations must be safe for concurrent use: many I/Os run on one
// target at once. Every I/O method takes the request's context first; a
// target that can wait (a remote device) must give up when it ends.
type Target interface {
	ReadAt(ctx context.Context, p []byte, off int64) error
	// WriteAt writes p at off; with FUA in flags the data is durable when
	// it returns.
	WriteAt(ctx context.Context, p []byte, off int64, flags WriteFlags) error
	// Trim discards a range; its content is undefined afterwards.
	Trim(ctx context.Context, off, length int64) error
	// Zero makes a range read as zeros.
	Zero(ctx context.Context, off, length int64, flags ZeroFlags) error
	// Extents reports allocation of [off, off+length) in order, calling emit
	// for each run until it returns false. Runs may be reported shorter than
	// they are; the sum covers at most the range.
	Extents(ctx context.Context, off, length int64, emit func(Extent) bool) error
	// SpliceTo writes exactly n bytes of [off, off+n) to pipe (a pipe's
	// write end, non-blocking) without copying them through user space
	// where it can (see splice.go), or fails: with ErrPipeFull when the
	// pipe has no room left. After a failure the pipe holds an unknown part
	// of the range and must be discarded.
	SpliceTo(ctx context.Context, pipe int, off, n int64) error
	// Status is dm's status text of the given type. For StatusTable, ""
	// means "the line's canonical args", which the table prints itself
	// (it keeps them; a target need not); a target returns something else
	// only when the TABLE form must differ from its args (crypt hides its
	// key there; snapshot prints the chunk size in use).
	Status(typ StatusType) string
}

// SecretHider is a target whose TABLE status hides a secret of its args
// (crypt's key, zeros as dmsetup prints it without --showkeys). With
// --showkeys the table prints such a target's canonical args instead;
// every other target's TABLE status stands either way, as in dm, where
// --showkeys changes only the keys (a snapshot's chunk size in use shows
// in both).
type SecretHider interface{ HidesSecret() }

// Flusher is a target with state that the table's DevSet.Sync does not
// make durable: a flush mark in a log, a remote device's own flush. The
// table calls Flush on every FLUSH, after syncing the DevSet (so a target
// whose devices all come from the DevSet needs no Flusher), and at destroy
// before the destructor.
type Flusher interface {
	Flush(ctx context.Context) error
}

// FlushRequester is a target that acts on a client's FLUSH request
// itself, as dm hands an empty flush bio to every target of the table: a
// fault injector fails it (flakey while down) or holds it back (delay's
// flush class). The table calls FlushRequest on every such target for each
// FLUSH request it serves, before it syncs; an error fails the request.
// It is not called for the table's own flushes at suspend, swap and
// destroy, which no client asked for (Flusher is, for state that must be
// durable then too).
type FlushRequester interface {
	FlushRequest(ctx context.Context) error
}

// FlushCounter is a target that counts a client's FLUSH that failed on
// one of its devices against itself: striped, whose dm counterpart sends
// a flush to each stripe and counts a failed one in its end_io. The table
// calls FlushFailed once for each device of its DevSet whose sync failed
// while serving a FLUSH request, from the goroutine serving it, and never
// for its own flushes (as FlushRequester) nor for a failure that is only
// the request's context ending.
type FlushCounter interface {
	FlushFailed(dev *Dev, err error)
}

// BlockSizer is a target that takes no I/O smaller than, or not aligned
// to, its logical block size (crypt with sector_size: dm's io_hints). The
// table's logical block size is the largest of its targets', and the NBD
// server advertises it as the minimum block size.
type BlockSizer interface {
	LogicalBlockSize() int
}

// Placer is a target that must know where its table puts it: dm's
// ti->begin, the sector of the mapped device its range starts at. The
// table calls Place once, after New, before any I/O. crypt needs it
// because dm-crypt checks a bio's alignment on the mapped device, not in
// the target.
type Placer interface {
	Place(begin uint64)
}

// Discarder is a target that may take no discards (crypt without
// allow_discards): dm then gives the whole device no discard support, and
// gdm's NBD export offers no TRIM. Targets without it take discards.
type Discarder interface {
	SupportsDiscard() bool
}

// SelfDiscarder is a target that takes discards whether or not its
// devices do (dm's discards_supported): log-writes logs a discard and
// passes it on only to a data device that takes one. Every other
// target's discards go to its devices, so a table takes none where one of
// the devices a target noted (its areas, dm's iterate_devices) cannot
// (dev_caps.go).
type SelfDiscarder interface {
	DiscardsWithoutDevices() bool
}

// ZeroPasser is a target that passes write-zeroes to its devices (dm's
// num_write_zeroes_bios): in 6.1 only linear and striped. A table takes
// write-zeroes only when every target is one and every device they noted
// takes them (dm_table_supports_write_zeroes); gdm's NBD export then
// offers no WRITE_ZEROES, and a client writes the zeros itself, as the
// kernel's BLKZEROOUT does on such a dm device. The targets still serve
// Zero (a client that saw WRITE_ZEROES before a reload may send one).
type ZeroPasser interface {
	PassesWriteZeroes() bool
}

// Messenger is a target that takes `dmsetup message` (dm's .message): args
// are the message's words; the reply may be empty. A target without it
// answers ErrNoMessages.
type Messenger interface {
	Message(ctx context.Context, args []string) (string, error)
}

// Suspender is a target that acts when its table stops serving I/O, at
// dm's points: PreSuspend before I/O is stopped (I/O may still arrive),
// PostSuspend after in-flight I/O completed (and the flush, unless
// noflush). PreSuspendUndo follows a PreSuspend whose suspend failed: the
// table serves I/O again without any resume hook.
type Suspender interface {
	PreSuspend(ctx context.Context)
	PreSuspendUndo(ctx context.Context)
	PostSuspend(ctx context.Context)
}

// Resumer is a target that acts when its table starts serving I/O.
// PreResume may refuse: then the resume is refused and nothing changes (a
// table about to go live stays inactive); it may be called again later
// without a Resume in between. Resume follows a PreResume that succeeded on
// every target, just before I/O is let in.
type Resumer interface {
	PreResume(ctx context.Context) error
	Resume(ctx context.Context)
}

// Destroyer is a target that must release what New took beyond its DevSet
// devices (goroutines, connections, memory maps). The table calls Destroy
// exactly once, from its destroy, after the last holder left and after the
// final flush, while the DevSet's devices are still open: never from an I/O
// path or a Put. A table that was live has been suspended (PostSuspend)
// first.
type Destroyer interface {
	Destroy() error
}

// Base gives a target the defaults of what every target has: an empty
// INFO status, and the TABLE status left to the table (the line's
// canonical args). It holds nothing, so a million targets pay nothing for
// it: the arguments New gets live in the table's text, in a slice the
// builder reuses from line to line, and must not be kept as a slice.
type Base struct{}

// Status is "" for both types: no INFO text, and the canonical args for
// TABLE (see Target.Status).
func (Base) Status(StatusType) string { return "" }
