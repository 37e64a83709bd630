package targets

import "context"

// A striped target whose legs are all block devices read with O_DIRECT
// takes its reads and writes asynchronously, through its legs' AIO
// (dev_aio.go), as linear does: a request within one chunk on its leg
// (random I/O of a chunk or less, where many requests in flight on each
// disk matter most), one across chunks as a vector per leg
// (striped_vectored.go). The legs' counters and error accounting are
// those of legIO: AsyncErr's for a request within one chunk, the
// vectors' own for one across chunks.

var _ AsyncTarget = (*striped)(nil)

// CanAsync says whether every leg takes AIO.
func (s *striped) CanAsync() bool {
	for i := range s.legs {
		if !s.legs[i].dev.asyncIO() {
			return false
		}
	}
	return len(s.legs) > 0
}

// CanSpliceWrite: no; spliced writes are a remote leg's.
func (s *striped) CanSpliceWrite() bool { return false }

// ReadAsync starts a read on its leg, or across chunks on each leg's
// vector.
func (s *striped) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	leg, devOff, ok := s.onePiece(off, int64(len(p)))
	if !ok {
		return s.startVectored(false, p, off, done)
	}
	return s.legs[leg].dev.ReadAsync(ctx, p, devOff, done)
}

// WriteAsync starts a write as ReadAsync starts a read.
func (s *striped) WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	leg, devOff, ok := s.onePiece(off, int64(len(p)))
	if !ok {
		return s.startVectored(true, p, off, done)
	}
	return s.legs[leg].dev.WriteAsync(ctx, p, devOff, done)
}

// onePiece locates [off, off+n) on its leg, if it lies within one chunk.
func (s *striped) onePiece(off, n int64) (leg int, devOff int64, ok bool) {
	leg, devOff, room := s.locate(off)
	return leg, devOff, n > 0 && n <= room
}

// SpliceWriteAsync and SpliceReadAsync take nothing (see CanSpliceWrite).
func (s *striped) SpliceWriteAsync(context.Context, int, int64, []byte, int64, func(error)) bool {
	return false
}

func (s *striped) SpliceReadAsync(context.Context, int, int64, int64, func(error)) bool {
	return false
}

// AsyncErr counts a request within one chunk against its leg, as legIO
// does, and gives the device's error; one across chunks was counted, and
// its error settled, by its vectors (striped_vectored.go).
func (s *striped) AsyncErr(kind AsyncKind, off, n int64, err error) error {
	if _, _, one := s.onePiece(off, n); !one {
		err, _ = settled(err)
		return err
	}
	leg, devOff, _ := s.locate(off)
	l := &s.legs[leg]
	err = l.dev.asyncErr(kind, devOff, err)
	l.stats.Ops.Add(1)
	if err == nil {
		l.stats.Bytes.Add(uint64(n))
	}
	return s.count(leg, err)
}
