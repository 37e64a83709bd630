package targets

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// logWrites is dm-log-writes: `log-writes <dev> <log dev>` maps the range
// onto <dev> and records every write, discard, flush and FUA write, and
// every mark a message adds, on <log dev> in dm's format
// (internal/logwrites), so that `gdm replay` (or replay-log) can rebuild
// the device as it was at any point. Its order is dm's: a plain write or
// discard is logged only when a FLUSH that follows its completion
// completes, just before that flush's own entry; a FUA write and a mark are
// logged at once, and the super block's entry count is rewritten after
// each of those two only. The log's sector size is <dev>'s logical block
// size, as dm's is: 512 for a file, 4096 for a disk of 4 KiB sectors.
//
// The log is written but never synced by the target, as dm does; the
// table's sync at a FLUSH makes it durable, since <log dev> is one of the
// table's devices. When the log is full (or a log write failed), logging
// stops for good and the status says logging_disabled, as dm's does; the
// device keeps serving I/O. A <log dev> of size 0 (an empty file) has no
// end, as dm treats a log device whose size it cannot tell.
type logWrites struct {
	Base
	dev   *Dev
	log   *logWriter
	begin int64       // byte of the mapped device the target starts at (Place)
	live  atomic.Bool // resumed once: its destructor may write to the log

	flushMu sync.Mutex // one FLUSH at a time (see FlushRequest)
}

var (
	_ Target         = (*logWrites)(nil)
	_ FlushRequester = (*logWrites)(nil)
	_ Messenger      = (*logWrites)(nil)
	_ Destroyer      = (*logWrites)(nil)
	_ Resumer        = (*logWrites)(nil)
	_ Placer         = (*logWrites)(nil)
)

// logWritesEndMark is the mark dm's destructor logs, to get the writes no
// flush followed (and the super block's count) into the log.
const logWritesEndMark = "dm-log-writes-end"

func init() {
	register(&Type{Name: "log-writes", Version: [3]uint32{1, 1, 0}, Check: checkLogWrites, New: newLogWrites,
		Syntax:  "<dev> <log dev>",
		Summary: "maps the range onto <dev>, logging writes, flushes and marks to <log dev> for gdm replay (gdm message: mark NAME)",
		// Two tables appending to one log would interleave entries and
		// each rewrite the super block with its own count.
		NoLiveSwap: true})
}

// checkLogWrites takes dm's line: two paths; dm ignores further words,
// and so does gdm (they are not in the canonical args).
func checkLogWrites(args []string, _ uint64) ([]string, error) {
	if len(args) < 2 {
		return nil, fmt.Errorf("%w: log-writes takes 2, got %d: Invalid argument count", ErrArgCount, len(args))
	}
	if args[0] == "" || args[1] == "" {
		return nil, ErrEmptyPath
	}
	return []string{args[0], args[1]}, nil
}

func newLogWrites(args []string, sectors uint64, devs *DevSet) (Target, error) {
	dev, err := openSized(devs, args[0], 0, sectors)
	if err != nil {
		return nil, err
	}
	logDev, err := devs.Open(args[1])
	if err != nil {
		return nil, err
	}
	return &logWrites{dev: dev, log: newLogWriter(logDev, dev.LogicalBlockSize())}, nil
}

// Status is dm's: INFO "<logged entries> <last log sector in use>", then
// " logging_disabled" once logging stopped; TABLE the two paths (Base).
func (l *logWrites) Status(typ StatusType) string {
	if typ != StatusInfo {
		return ""
	}
	entries, next, enabled := l.log.state()
	s := fmt.Sprintf("%d %d", entries, next-1)
	if !enabled {
		s += " logging_disabled"
	}
	return s
}

// Message takes dm's one message, `mark <name>`: the name is logged at
// once, after every entry logged so far.
func (l *logWrites) Message(_ context.Context, args []string) (string, error) {
	if len(args) != 2 {
		return "", fmt.Errorf("log-writes: Invalid log-writes message arguments, expect 2 arguments, got %d: %w", len(args), syscall.EINVAL)
	}
	if !strings.EqualFold(args[0], "mark") {
		return "", fmt.Errorf("log-writes: Unrecognised log writes target message received: %s: %w", args[0], syscall.EINVAL)
	}
	l.log.mark(args[1])
	return "", nil
}

// Place takes the sector the table starts the target at. dm's target
// never subtracts it from a bio's sector (its map only sets the bio's
// device, where dm-linear adds dm_target_offset): byte off of a target
// that starts at begin is byte begin+off of <dev>, and is logged at that
// sector. Only the first <len> sectors of <dev> are checked at load (its
// iterate_devices says 0 and the length), so I/O past <dev>'s end fails
// with EIO, as the kernel's end-of-device check fails it.
func (l *logWrites) Place(begin uint64) { l.begin = int64(begin) * SectorSize }

// at is where [off, off+n) of the target is on <dev> (see Place); EIO when
// it ends past <dev>'s end.
func (l *logWrites) at(off, n int64) (int64, error) {
	if off += l.begin; off+n > l.dev.Size() {
		return 0, fmt.Errorf("log-writes: %d bytes at %d are past the end of %s (%d bytes): %w",
			n, off, l.dev.Path(), l.dev.Size(), syscall.EIO)
	}
	return off, nil
}

// PreResume lets the table go live.
func (l *logWrites) PreResume(context.Context) error { return nil }

// Resume records that the table went live.
func (l *logWrites) Resume(context.Context) { l.live.Store(true) }

// Destroy logs what dm's destructor does: the writes no flush followed,
// then the end mark (which rewrites the super block), and makes the log
// durable, since the table's last sync came before. A table that never
// went live writes nothing: dm's would log its end mark at the log's
// start and count it in the super block, over the log of the live table
// it was loaded next to (`gdm load` then `gdm clear` would wreck it).
func (l *logWrites) Destroy() error {
	if !l.live.Load() {
		return nil
	}
	l.log.flushPending()
	l.log.mark(logWritesEndMark)
	return l.log.dev.Sync()
}
