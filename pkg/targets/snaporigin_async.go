package targets

import "context"

// A snapshot-origin over a block device read with O_DIRECT (or a remote
// one) reads asynchronously, as linear does: a read goes straight to the
// origin whatever the snapshots hold, so it needs nothing of theirs. A
// write that copies nothing (no snapshot, or every snapshot has its
// chunks already: a rewrite) goes asynchronously too, holding what the
// blocking write holds (the snapshots' list, the write's range) until it
// completes; both are only tried, never waited for. A write that must
// copy chunks to a snapshot first takes the blocking path.

var _ AsyncTarget = (*snapOrigin)(nil)

// CanAsync says whether the origin is remote or takes AIO.
func (o *snapOrigin) CanAsync() bool { return o.dev.Remote() || o.dev.asyncIO() }

// CanSpliceWrite: no; spliced writes are linear's.
func (o *snapOrigin) CanSpliceWrite() bool { return false }

// ReadAsync starts a read of the origin.
func (o *snapOrigin) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	return o.dev.ReadAsync(ctx, p, off, done)
}

// SpliceReadAsync starts moving a range of a remote origin into pipe.
func (o *snapOrigin) SpliceReadAsync(ctx context.Context, pipe int, off, n int64, done func(error)) bool {
	return o.dev.SpliceReadAsync(ctx, pipe, off, n, done)
}

// WriteAsync starts a write that copies nothing (see above).
func (o *snapOrigin) WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	return o.entry.writeAsync(off, int64(len(p)), done, func(done func(error)) bool {
		return o.dev.WriteAsync(ctx, p, off, done)
	})
}

// SpliceWriteAsync declines: spliced writes are linear's.
func (o *snapOrigin) SpliceWriteAsync(context.Context, int, int64, []byte, int64, func(error)) bool {
	return false
}

// writeAsync starts an origin write of [off, off+n) with start, if it
// copies nothing to any snapshot, holding what write holds until done;
// false: not started, done will not be called.
func (e *originEntry) writeAsync(off, n int64, done func(error), start func(func(error)) bool) bool {
	if !e.mu.TryRLock() {
		return false // a snapshot attaching or leaving: the blocking way
	}
	release := e.mu.RUnlock
	if len(e.snaps) > 0 {
		lo, hi := e.writeRange(off, n)
		tok, ok := e.locks.tryLock(lo, hi, false)
		if !ok {
			e.mu.RUnlock()
			return false
		}
		release = func() { tok.unlock(); e.mu.RUnlock() }
		if e.copiesAny(off, n) {
			release()
			return false
		}
	}
	if start(func(err error) { release(); done(err) }) {
		return true
	}
	release()
	return false
}

// copiesAny says whether an origin write of [off, off+n) would copy a
// chunk to any snapshot; e.mu held, and the range.
func (e *originEntry) copiesAny(off, n int64) bool {
	for _, s := range e.snaps {
		if s.merging {
			continue
		}
		if _, olds := s.toCopy(off, n); len(olds) > 0 {
			return true
		}
	}
	return false
}

// AsyncErr is the origin's error for a request at off.
func (o *snapOrigin) AsyncErr(kind AsyncKind, off, _ int64, err error) error {
	return o.dev.asyncErr(kind, off, err)
}
