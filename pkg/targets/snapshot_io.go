package targets

import (
	"context"
	"errors"
	"log/slog"
)

// The snapshot's I/O. A request is split into runs of chunks
// (snapshot_runs.go); each run goes to its exceptions on the COW device if
// it has them, else (reads) to the origin, or (writes) to new exceptions
// filled with the origin's chunks first where the write covers them in
// part. A run that has no exceptions takes its chunks' range lock in the
// origin's entry: shared for a read, so that an origin write cannot change
// the chunks under it, exclusive for a write.

// chunkPiece is the part of a request that falls in one chunk.
type chunkPiece struct {
	chunk uint64
	in    int64 // offset inside the chunk
	p     []byte
}

// eachPiece calls f for each chunk's part of [off, off+len(p)).
func eachPiece(cs int64, p []byte, off int64, f func(chunkPiece) error) error {
	for len(p) > 0 {
		in := off % cs
		k := min(int64(len(p)), cs-in)
		if err := f(chunkPiece{chunk: uint64(off / cs), in: in, p: p[:k]}); err != nil {
			return err
		}
		p, off = p[k:], off+k
	}
	return nil
}

// usable is the store, or the error every I/O of an invalid snapshot gets.
func (s *snapshot) usable() (*cowStore, error) {
	st := s.store.Load()
	if valid, _ := st.state(); !valid || s.handedOver.Load() {
		return nil, ErrSnapInvalid
	}
	return st, nil
}

// ReadAt reads each run from the origin under the run's shared range,
// then the runs on the COW device, gathered (snapshot_gather.go): a COW
// chunk's bytes change only with writes to the snapshot itself, so those
// need no range. Never through a mapping of either device: a page fault
// holds the goroutine's Go P until it is served, and a fault that needs
// memory can wait on the writeback of an NBD device this same process
// serves (a guest's /dev/nbdX over gdm), so with GOMAXPROCS=1 nothing
// would serve it; pread is a system call, during which the runtime hands
// the P to another thread.
func (s *snapshot) ReadAt(_ context.Context, p []byte, off int64) error {
	st, err := s.usable()
	if err != nil {
		return err
	}
	cs := st.lay.chunk
	var cow []cowIO
	err = s.eachRunHeld(st, p, off, true, nil, func(r chunkRun) error {
		cow = append(cow, cowIO{at: int64(r.nw)*cs + r.in, p: r.p})
		return nil
	}, func(r chunkRun) error {
		if s.beforeOriginRead != nil {
			s.beforeOriginRead()
		}
		return s.origin.ReadAt(r.p, int64(r.chunk)*cs+r.in)
	})
	if err != nil {
		return err
	}
	return gathered(st.dev, cow, false)
}

// eachRunHeld calls cow for each run that has its exceptions, and bare for
// each that has none with the run's range held (shared or exclusive): held,
// its chunks get no exception but from bare, and those that got one before
// the range was taken go to cow after all. With keep, the ranges stay held
// and their tokens are appended there, for the caller to unlock (after a
// commit); a request takes its ranges in ascending order, so two that keep
// theirs never wait for each other in a cycle.
func (s *snapshot) eachRunHeld(st *cowStore, p []byte, off int64, shared bool, keep *[]rangeToken,
	cow, bare func(chunkRun) error) error {
	cs := st.lay.chunk
	return eachRun(st, p, off, func(r chunkRun) error {
		if r.mapped {
			return cow(r)
		}
		at := int64(r.chunk) * cs
		tok := s.entry.locks.lock(at, at+int64(r.n)*cs, shared)
		if keep != nil {
			*keep = append(*keep, tok)
		} else {
			defer tok.unlock()
		}
		return eachRun(st, r.p, at+r.in, func(r chunkRun) error {
			if r.mapped {
				return cow(r)
			}
			return bare(r)
		})
	})
}

// WriteAt writes each run into its exceptions, made first where missing,
// the writes to the COW device gathered (snapshot_gather.go) once every
// run's new exceptions are allocated and their partial end chunks filled.
// The new exceptions of all its runs are then committed (synced) at once,
// their ranges held until then, before WriteAt returns, so FUA needs a
// sync only for runs that went to existing exceptions, and a request over
// chunks that earlier writes left mapped here and there costs one commit,
// not one per stretch between them. If the gathered write fails, the
// write fails, and the snapshot is invalidated only if the failure was in
// a new chunk the write fills (failsWhole): dm cuts a write at chunks,
// writes such a piece straight into its new chunk as the chunk's copy,
// and invalidates the snapshot when that copy fails; a piece to a chunk
// the snapshot has, or to part of a new chunk (its old data copied first),
// only fails, and the new exceptions are committed all the same. An
// overflowed (PO) snapshot takes no write at all, even to a chunk it has,
// as dm kills every write to it (the oracle's snapshot-full-PO case).
func (s *snapshot) WriteAt(_ context.Context, p []byte, off int64, flags WriteFlags) error {
	st, err := s.usable()
	if err != nil {
		return err
	}
	if _, over := st.state(); over {
		return ErrSnapOverflow
	}
	cs := st.lay.chunk
	var held []rangeToken
	defer func() {
		for _, tok := range held {
			tok.unlock()
		}
	}()
	var pairs []snapPair
	var cow []cowIO
	var whole map[uint64]bool // the new COW chunks the write fills
	err = s.eachRunHeld(st, p, off, false, &held, func(r chunkRun) error {
		cow = append(cow, cowIO{at: int64(r.nw)*cs + r.in, p: r.p})
		return nil
	}, func(r chunkRun) error {
		ps, ios, err := s.writeNew(st, r)
		pairs, cow = append(pairs, ps...), append(cow, ios...)
		whole = filledNew(whole, r, ps, cs)
		return err
	})
	werr := gathered(st.dev, cow, true)
	if werr != nil && failsWhole(st.dev, cs, cow, whole) {
		slog.Error("snapshot: invalidated: writing a new chunk failed", "cow", s.cow.Path(), "err", werr)
		st.invalidate()
		return werr
	}
	if len(pairs) > 0 {
		if s.beforeCommit != nil {
			s.beforeCommit()
		}
		// As dm's pending_complete: a snapshot that went invalid while
		// the write copied (an origin write found the COW full) takes no
		// new exception, and the write that made them fails.
		if valid, _ := st.state(); !valid {
			return ErrSnapInvalid
		}
		if cerr := st.commit(pairs); cerr != nil {
			return cerr
		}
	}
	if werr != nil {
		return werr
	}
	if err == nil && flags&FUA != 0 {
		err = st.dev.Sync()
	}
	return err
}

// writeNew prepares a run of chunks that have no exception, its range
// held: it allocates a COW chunk for each and fills the first and last
// from the origin where the run covers them in part. It returns the new
// exceptions, to be committed once their data is written, and the writes
// of the run's data, one per stretch of consecutive COW chunks. A full COW
// invalidates the snapshot, or with PO overflows it: the chunks allocated
// before are returned with their writes, the rest of the run fails.
func (s *snapshot) writeNew(st *cowStore, r chunkRun) ([]snapPair, []cowIO, error) {
	valid, over := st.state()
	switch {
	case !valid:
		return nil, nil, ErrSnapInvalid
	case over:
		return nil, nil, ErrSnapOverflow
	}
	pairs, full := s.allocate(st, r)
	if len(pairs) == 0 {
		return nil, nil, full
	}
	cs := st.lay.chunk
	q := r.p[:min(int64(len(r.p)), int64(len(pairs))*cs-r.in)] // the allocated chunks' part
	if err := s.fillEnds(st, pairs, r.in, r.in+int64(len(q))); err != nil {
		st.invalidate()
		return nil, nil, err
	}
	var ios []cowIO
	at := r.in
	for rest := pairs; len(rest) > 0; {
		m := newRunLen(rest)
		k := min(int64(m)*cs-at, int64(len(q)))
		ios = append(ios, cowIO{at: int64(rest[0].new)*cs + at, p: q[:k]})
		q, rest, at = q[k:], rest[m:], 0
	}
	return pairs, ios, full
}

// allocate takes a COW chunk for each chunk of r, as many as there is room
// for, consecutive ones (cowStore.prepareRun); full is the error the rest
// of the run gets (nil: none).
func (s *snapshot) allocate(st *cowStore, r chunkRun) (pairs []snapPair, full error) {
	pairs, err := st.prepareRun(r.n, func(i int) uint64 { return r.chunk + uint64(i) })
	switch {
	case err == nil:
		return pairs, nil
	case errors.Is(err, errCowFull) && s.overflowOK:
		st.setOverflow()
		return pairs, ErrSnapOverflow
	case errors.Is(err, errCowFull):
		st.invalidate()
		return nil, ErrSnapInvalid
	default:
		return nil, err
	}
}

// fillEnds copies from the origin the new chunks of pairs that a write of
// [from, to) (bytes from the first chunk's start) covers only in part:
// the first, the last, or both.
func (s *snapshot) fillEnds(st *cowStore, pairs []snapPair, from, to int64) error {
	cs := st.lay.chunk
	last := len(pairs) - 1
	var ends []snapPair
	if from > 0 || to < cs {
		ends = append(ends, pairs[0])
	}
	if last > 0 && to < int64(len(pairs))*cs {
		ends = append(ends, pairs[last])
	}
	for _, e := range ends {
		if err := copyChunks(s.origin, st, []snapPair{e}); err != nil {
			return err
		}
		s.copied.Add(1)
	}
	return nil
}

// Zero writes zeros through WriteAt: a snapshot has no cheaper way to make
// a range read as zeros, so a fast zero is refused.
func (s *snapshot) Zero(ctx context.Context, off, length int64, flags ZeroFlags) error {
	return zeroByWrites(ctx, s.WriteAt, off, length, flags)
}

// zeroByWrites makes a range read as zeros with plain writes of zeros; a
// fast zero, which asks for a cheaper way, is refused.
func zeroByWrites(ctx context.Context, write func(context.Context, []byte, int64, WriteFlags) error,
	off, length int64, flags ZeroFlags) error {
	if flags.Fast {
		return ErrNotSupported
	}
	for length > 0 {
		n := min(length, int64(len(zeroBuf)))
		if err := write(ctx, zeroBuf[:n], off, 0); err != nil {
			return err
		}
		off, length = off+n, length-n
	}
	return nil
}

// SupportsDiscard is discard_zeroes_cow: without it dm gives a snapshot no
// discard bios, so the device has no discard support (a discard fails
// with EOPNOTSUPP there, and gdm's export offers no TRIM). snapshot-merge
// shares the constructor, and so the rule.
func (s *snapshot) SupportsDiscard() bool { return s.zeroesCow }

// Trim does nothing unless discard_zeroes_cow (then it is not offered: see
// SupportsDiscard): then the chunks of the
// range that have exceptions are zeroed on the COW device where the range
// covers them whole (they read as zeros from now on), and the part of the
// range in a chunk it covers only in part is discarded there, as dm remaps
// such a piece (its bios are cut at chunks) to the exception's place on
// the COW device; what that piece then reads is what the COW device makes
// of a discard (a file or a block device: zeros). Chunks without an
// exception are left alone: dm ends their discard at once rather than
// copy the origin out first. With discard_passdown_origin too, the range is
// discarded on the origin as well, as dm passes a second discard bio
// straight to the origin's device: no copy-out first (that would fill the
// COW the discard means to spare), so the origin's other snapshots, if
// any, see the discard too, as in dm. The origin's range is held meanwhile
// so that no copy or snapshot read of it is half done. An overflowed (PO)
// snapshot refuses it as it refuses writes: dm's snapshot_map kills every
// write-direction bio of an overflowed snapshot, discards (both of them)
// included, before it looks at the discard.
func (s *snapshot) Trim(_ context.Context, off, length int64) error {
	st, err := s.usable()
	if err != nil || !s.zeroesCow {
		return err
	}
	if _, over := st.state(); over {
		return ErrSnapOverflow
	}
	cs := st.lay.chunk
	for at, end := off, off+length; at < end; {
		c := at / cs
		in, n := at-c*cs, min(end, (c+1)*cs)-at
		at += n
		nw, ok := st.lookup(uint64(c))
		if !ok {
			continue
		}
		if n == cs {
			err = st.dev.Zero(int64(nw)*cs, cs, ZeroFlags{})
		} else {
			err = st.dev.Trim(int64(nw)*cs+in, n)
		}
		if err != nil {
			return err
		}
	}
	if !s.passdown {
		return nil
	}
	tok := s.entry.locks.lock(off/cs*cs, (off+length+cs-1)/cs*cs, false)
	defer tok.unlock()
	return s.origin.Trim(off, length)
}

// Extents reports everything as data: the mapping is per chunk and mixes
// two devices, and allocation on neither says what the snapshot holds.
func (s *snapshot) Extents(_ context.Context, _, length int64, emit func(Extent) bool) error {
	if _, err := s.usable(); err != nil {
		return err
	}
	emit(Extent{Length: length})
	return nil
}

// SpliceTo splices a range the snapshot holds whole on the COW device, run
// by run. A range with a chunk still on the origin is left to ReadAt
// (ErrPipeFull, with nothing in the pipe yet): the pipe holds references
// to the origin's pages, not their bytes, and sends them after the range
// lock is gone, when an origin write may have changed them, which the
// snapshot must never show. Holding the range until the pipe has been
// spliced into the socket would not do: the socket's queue holds the same
// pages until the client reads them (TestSplicedPagesFollowWritesUntilRead),
// which the server cannot see. Its own exceptions change only with writes to
// the snapshot itself, as a linear device's pages do.
func (s *snapshot) SpliceTo(_ context.Context, pipe int, off, n int64) error {
	st, err := s.usable()
	if err != nil {
		return err
	}
	var runs []chunkRun
	for end := off + n; off < end; off += runs[len(runs)-1].size {
		r := st.nextRun(off, end-off)
		if !r.mapped {
			return ErrPipeFull
		}
		runs = append(runs, r)
	}
	cs := st.lay.chunk
	for _, r := range runs {
		if err := st.dev.SpliceTo(pipe, int64(r.nw)*cs+r.in, r.size); err != nil {
			return err
		}
	}
	return nil
}
