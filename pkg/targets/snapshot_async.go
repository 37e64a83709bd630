package targets

import "context"

// A snapshot whose origin and COW device are block devices read with
// O_DIRECT reads asynchronously through their AIO, as linear does, a
// request that lies in one run of chunks (snapshot_runs.go): a run with
// exceptions from the COW device, a run without from the origin, its
// range held shared (as ReadAt holds it) from the start of the read to
// its completion, so that no origin write changes those chunks under it.
// The range is only tried: if an origin or snapshot write holds it, the
// read declines and takes the blocking path, which waits for it. Reads
// across runs, and every write (which makes exceptions and commits them),
// take the blocking path too.

var _ AsyncTarget = (*snapshot)(nil)

// CanAsync says whether both devices take AIO.
func (s *snapshot) CanAsync() bool { return s.origin.asyncIO() && s.cow.asyncIO() }

// CanSpliceWrite: no (see above).
func (s *snapshot) CanSpliceWrite() bool { return false }

// ReadAsync starts a read that lies in one run (see above).
func (s *snapshot) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	st, err := s.usable()
	if err != nil || s.beforeOriginRead != nil { // a test's hook needs the blocking path
		return false
	}
	n := int64(len(p))
	r := st.nextRun(off, n)
	if r.size != n {
		return false
	}
	cs := st.lay.chunk
	if r.mapped {
		at := int64(r.nw)*cs + r.in
		return st.dev.ReadAsync(ctx, p, at, func(err error) { done(settle(st.dev.asyncErr(AsyncRead, at, err))) })
	}
	lo := int64(r.chunk) * cs
	tok, ok := s.entry.locks.tryLock(lo, lo+int64(r.n)*cs, true)
	if !ok {
		return false
	}
	// Held, the run gets no exception but from this snapshot's own
	// writes, which hold it too; one that came before the range was
	// taken sends the read the blocking way.
	if r := st.nextRun(off, n); r.mapped || r.size != n ||
		!s.origin.ReadAsync(ctx, p, off, func(err error) {
			tok.unlock()
			done(settle(s.origin.asyncErr(AsyncRead, off, err)))
		}) {
		tok.unlock()
		return false
	}
	return true
}

// WriteAsync declines: a write makes exceptions and commits them.
func (s *snapshot) WriteAsync(context.Context, []byte, int64, func(error)) bool { return false }

// SpliceWriteAsync and SpliceReadAsync take nothing.
func (s *snapshot) SpliceWriteAsync(context.Context, int, int64, []byte, int64, func(error)) bool {
	return false
}

func (s *snapshot) SpliceReadAsync(context.Context, int, int64, int64, func(error)) bool {
	return false
}

// AsyncErr passes on the read's error, put in its device's words when it
// completed (which device it was is known only then).
func (s *snapshot) AsyncErr(_ AsyncKind, _, _ int64, err error) error {
	err, _ = settled(err)
	return err
}
