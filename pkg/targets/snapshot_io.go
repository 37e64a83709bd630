package targets

import (
	"context"
	"errors"
)

// The snapshot's I/O. A request is split at chunk boundaries; each piece
// goes to the chunk's exception on the COW device if there is one, else
// (reads) to the origin, or (writes) to a new exception filled with the
// origin's chunk first. A piece that has no exception yet takes its
// chunk's range lock in the origin's entry: shared for a read, so that an
// origin write cannot change the chunk under it, exclusive for a write.

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

func (s *snapshot) ReadAt(_ context.Context, p []byte, off int64) error {
	st, err := s.usable()
	if err != nil {
		return err
	}
	cs := st.lay.chunk
	return eachPiece(cs, p, off, func(c chunkPiece) error {
		if nw, ok := st.lookup(c.chunk); ok {
			return st.dev.ReadAt(c.p, int64(nw)*cs+c.in)
		}
		at := int64(c.chunk) * cs
		tok := s.entry.locks.lock(at, at+cs, true)
		defer tok.unlock()
		if nw, ok := st.lookup(c.chunk); ok {
			return st.dev.ReadAt(c.p, int64(nw)*cs+c.in)
		}
		if s.beforeOriginRead != nil {
			s.beforeOriginRead()
		}
		return s.origin.ReadAt(c.p, at+c.in)
	})
}

// WriteAt writes each piece into its exception, made first where missing.
// A new exception is committed (synced) before WriteAt returns, so FUA
// needs a sync only for pieces that went to existing exceptions. An
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
	err = eachPiece(cs, p, off, func(c chunkPiece) error {
		if nw, ok := st.lookup(c.chunk); ok {
			return st.dev.WriteAt(c.p, int64(nw)*cs+c.in)
		}
		return s.writeNew(st, c)
	})
	if err == nil && flags&FUA != 0 {
		err = st.dev.Sync()
	}
	return err
}

// writeNew writes a piece of a chunk that had no exception when looked at:
// under the chunk's lock it looks again, else allocates a COW chunk, fills
// it from the origin (unless the piece covers it all), writes the piece
// and commits the exception. A full COW invalidates the snapshot, or with
// PO overflows it: new exceptions fail, the rest goes on.
func (s *snapshot) writeNew(st *cowStore, c chunkPiece) error {
	cs := st.lay.chunk
	at := int64(c.chunk) * cs
	tok := s.entry.locks.lock(at, at+cs, false)
	defer tok.unlock()
	if nw, ok := st.lookup(c.chunk); ok {
		return st.dev.WriteAt(c.p, int64(nw)*cs+c.in)
	}
	valid, over := st.state()
	switch {
	case !valid:
		return ErrSnapInvalid
	case over:
		return ErrSnapOverflow
	}
	nw, err := st.prepare()
	if errors.Is(err, errCowFull) && s.overflowOK {
		st.setOverflow()
		return ErrSnapOverflow
	}
	if errors.Is(err, errCowFull) {
		st.invalidate()
		return ErrSnapInvalid
	}
	if err != nil {
		return err
	}
	if int64(len(c.p)) < cs {
		if err := copyChunk(s.origin, st, c.chunk, nw, make([]byte, cs)); err != nil {
			st.invalidate()
			return err
		}
		s.copied.Add(1)
	}
	if err := st.dev.WriteAt(c.p, int64(nw)*cs+c.in); err != nil {
		return err
	}
	return st.commit([]snapPair{{old: c.chunk, new: nw}})
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

// Trim does nothing unless discard_zeroes_cow: then the whole chunks of the
// range that have exceptions are zeroed on the COW device (they read as
// zeros from now on). With discard_passdown_origin too, the range is
// discarded on the origin as well, as dm passes a second discard bio
// straight to the origin's device: no copy-out first (that would fill the
// COW the discard means to spare), so the origin's other snapshots, if
// any, see the discard too, as in dm. The origin's range is held meanwhile
// so that no copy or snapshot read of it is half done.
func (s *snapshot) Trim(_ context.Context, off, length int64) error {
	st, err := s.usable()
	if err != nil || !s.zeroesCow {
		return err
	}
	cs := st.lay.chunk
	for c := (off + cs - 1) / cs; (c+1)*cs <= off+length; c++ {
		if nw, ok := st.lookup(uint64(c)); ok {
			if err := st.dev.Zero(int64(nw)*cs, cs, ZeroFlags{}); err != nil {
				return err
			}
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

// SpliceTo leaves every read to ReadAt (ErrPipeFull), which knows the
// mapping and its locks.
func (s *snapshot) SpliceTo(context.Context, int, int64, int64) error { return ErrPipeFull }
