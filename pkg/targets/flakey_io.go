package targets

import "context"

// flakey's I/O paths. pkg/table splits a request at target boundaries, so
// each call here is what dm calls a bio: corrupt_bio_byte's Nth byte
// counts from the start of this piece, and a piece shorter than N is left
// alone. In the up interval flakey is linear. The kernel sends flushes,
// discards and write-zeroes down the write side (they have no data), so
// Trim and Zero are dropped or failed as writes are. dm does the same to
// an empty FLUSH bio; gdm's table syncs its devices itself, and flakey has
// no say in that (it has no Flusher: a failing one would also fail
// suspend, reload and destroy, which dm never sends a flush bio).
//
// The I/O methods ignore ctx: pread and pwrite on a local file or block
// device cannot be cancelled.

func (f *flakey) ReadAt(_ context.Context, p []byte, off int64) error {
	if !f.isDown() {
		return f.dev.ReadAt(p, f.offset+off)
	}
	if f.cfg.errorReads {
		f.faults.Add(FaultReadError)
		return ErrFlakeyDown
	}
	if err := f.dev.ReadAt(p, f.offset+off); err != nil {
		return err
	}
	// dm corrupts a read once it completed, in the caller's pages.
	if c := f.plan(0, len(p)); c.any() {
		f.apply(p, c)
	}
	return nil
}

// WriteAt in the down interval drops or fails the write, or writes a
// corrupted copy: dm (since 6.5) writes a clone of the bio's pages, and
// gdm must never change the caller's buffer (the NBD server's).
func (f *flakey) WriteAt(_ context.Context, p []byte, off int64, flags WriteFlags) error {
	if f.isDown() {
		if done, err := f.writeFault(); done {
			return err
		}
		opf := flakeyOpWrite
		if flags&FUA != 0 {
			opf |= flakeyReqFUA
		}
		if c := f.plan(opf, len(p)); c.any() {
			p = append([]byte(nil), p...)
			f.apply(p, c)
		}
	}
	err := f.dev.WriteAt(p, f.offset+off)
	if err == nil && flags&FUA != 0 {
		err = f.dev.Sync()
	}
	return err
}

// writeFault applies drop_writes or error_writes to a write-side request
// of the down interval; done is false when neither is set.
func (f *flakey) writeFault() (done bool, err error) {
	switch {
	case f.cfg.dropWrites:
		f.faults.Add(FaultWriteDropped)
		return true, nil
	case f.cfg.errorWrites:
		f.faults.Add(FaultWriteError)
		return true, ErrFlakeyDown
	}
	return false, nil
}

func (f *flakey) Trim(_ context.Context, off, length int64) error {
	if f.isDown() {
		if done, err := f.writeFault(); done {
			return err
		}
	}
	return f.dev.Trim(f.offset+off, length)
}

func (f *flakey) Zero(_ context.Context, off, length int64, flags ZeroFlags) error {
	if f.isDown() {
		if done, err := f.writeFault(); done {
			return err
		}
	}
	return f.dev.Zero(f.offset+off, length, flags)
}

// Extents is no bio in dm (NBD's block status has no kernel request): it
// is always answered from the device.
func (f *flakey) Extents(_ context.Context, off, length int64, emit func(Extent) bool) error {
	return f.dev.Extents(f.offset+off, length, emit)
}

// SpliceTo answers a read the down interval fails with ReadAt's error,
// and one it may corrupt with ErrPipeFull, so that the caller serves the
// range through ReadAt, which corrupts it. Otherwise it splices as linear.
func (f *flakey) SpliceTo(_ context.Context, pipe int, off, n int64) error {
	if f.isDown() {
		if f.cfg.errorReads {
			f.faults.Add(FaultReadError)
			return ErrFlakeyDown
		}
		if f.readMayCorrupt() {
			return ErrPipeFull
		}
	}
	return f.dev.SpliceTo(pipe, f.offset+off, n)
}

// corruptMatches says whether corrupt_bio_byte applies to a request of
// direction opf (flakeyOpWrite set for writes) and length n: the right
// direction, all its flags in opf, and a piece long enough.
func (f *flakey) corruptMatches(opf uint32, n int) bool {
	c := &f.cfg
	write := opf&flakeyOpWrite != 0
	return c.corruptByte != 0 && c.corruptWrite == write &&
		opf&c.corruptFlags == c.corruptFlags && uint64(c.corruptByte) <= uint64(n)
}

// flakeyCorruption is what dm does to one bio of the down interval:
// corrupt_bio_byte's fixed byte, then random_*_corrupt's random one.
type flakeyCorruption struct {
	fixed, random bool
	at            int
	value         byte
}

func (c flakeyCorruption) any() bool { return c.fixed || c.random }

// plan decides the corruption of a request of direction opf and length n,
// drawing random_*_corrupt's numbers, before any buffer is touched (a
// write is copied only when something will change).
func (f *flakey) plan(opf uint32, n int) flakeyCorruption {
	c := flakeyCorruption{fixed: f.corruptMatches(opf, n)}
	prob := f.cfg.randomRead
	if opf&flakeyOpWrite != 0 {
		prob = f.cfg.randomWrite
	}
	c.random, c.at, c.value = f.corruptDraw(prob, n)
	return c
}

// apply changes p as planned and counts the request as corrupted (a
// random value equal to the old byte still counts, as dm still "corrupts").
func (f *flakey) apply(p []byte, c flakeyCorruption) {
	if c.fixed {
		p[f.cfg.corruptByte-1] = f.cfg.corruptValue
	}
	if c.random {
		p[c.at] = c.value
	}
	f.faults.Add(FaultCorrupted)
}
