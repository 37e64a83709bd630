package targets

import "context"

// The merging device's I/O, dm's snapshot_merge_map: a chunk that still
// has an exception is read and written on the COW device; any other chunk
// (merged already, or never copied) on the origin, a write through the
// origin's entry so that the other snapshots get their copies first. A
// piece holds its chunk's range shared while it looks and does its I/O, so
// the merge step of that chunk (which holds it exclusively) waits for it,
// and it for the step: dm queues the writes to the chunks being merged
// and waits for those in flight the same way. An invalid merging snapshot
// maps everything to the origin, as dm's.

func (m *snapMerge) ReadAt(_ context.Context, p []byte, off int64) error {
	st := m.s.store.Load()
	cs := st.lay.chunk
	return eachPiece(cs, p, off, func(c chunkPiece) error {
		at := int64(c.chunk) * cs
		tok := m.s.entry.locks.lock(at, at+cs, true)
		defer tok.unlock()
		if nw, ok := m.lookup(st, c.chunk); ok {
			return st.dev.ReadAt(c.p, int64(nw)*cs+c.in)
		}
		return m.s.origin.ReadAt(c.p, at+c.in)
	})
}

// lookup is the exception of a chunk, none once the snapshot is invalid.
func (m *snapMerge) lookup(st *cowStore, chunk uint64) (uint64, bool) {
	if valid, _ := st.state(); !valid {
		return 0, false
	}
	return st.lookup(chunk)
}

// WriteAt writes each piece where its chunk lives now. An exception never
// comes back once merged, so a piece found without one may go to the
// origin after its shared range is released.
func (m *snapMerge) WriteAt(_ context.Context, p []byte, off int64, flags WriteFlags) error {
	st := m.s.store.Load()
	cs := st.lay.chunk
	err := eachPiece(cs, p, off, func(c chunkPiece) error {
		at := int64(c.chunk) * cs
		tok := m.s.entry.locks.lock(at, at+cs, true)
		nw, ok := m.lookup(st, c.chunk)
		if ok {
			defer tok.unlock()
			return st.dev.WriteAt(c.p, int64(nw)*cs+c.in)
		}
		tok.unlock()
		return m.s.entry.write(m.s.origin, at+c.in, int64(len(c.p)), func() error {
			return m.s.origin.WriteAt(c.p, at+c.in)
		})
	})
	if err != nil || flags&FUA == 0 {
		return err
	}
	if err := st.dev.Sync(); err != nil {
		return err
	}
	return m.s.origin.Sync()
}

// Zero writes zeros through WriteAt, as a snapshot does.
func (m *snapMerge) Zero(ctx context.Context, off, length int64, flags ZeroFlags) error {
	return zeroByWrites(ctx, m.WriteAt, off, length, flags)
}

// SupportsDiscard is the snapshot's rule (discard_zeroes_cow), as dm's
// snapshot-merge is built by the snapshot's constructor.
func (m *snapMerge) SupportsDiscard() bool { return m.s.SupportsDiscard() }

// Trim does nothing: dm's merging snapshot completes discards untouched.
func (m *snapMerge) Trim(context.Context, int64, int64) error { return nil }

// Extents reports everything as data, as a snapshot does.
func (m *snapMerge) Extents(_ context.Context, _, length int64, emit func(Extent) bool) error {
	emit(Extent{Length: length})
	return nil
}

// SpliceTo leaves every read to ReadAt, which knows the mapping.
func (m *snapMerge) SpliceTo(context.Context, int, int64, int64) error { return ErrPipeFull }
