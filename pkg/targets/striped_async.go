package targets

import "context"

// A striped target whose legs are all block devices read with O_DIRECT
// takes a request that lies within one chunk asynchronously, through its
// leg's AIO (dev_aio.go), as linear does: random I/O of a chunk or less,
// the case where many requests in flight on each disk matter most. A
// request across chunks is split and done the ordinary way (rw). The
// leg's counters and error accounting are AsyncErr's, as legIO's are.

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

// ReadAsync starts a read that lies within one chunk on its leg.
func (s *striped) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	leg, devOff, ok := s.onePiece(off, int64(len(p)))
	return ok && s.legs[leg].dev.ReadAsync(ctx, p, devOff, done)
}

// WriteAsync starts a write that lies within one chunk on its leg.
func (s *striped) WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	leg, devOff, ok := s.onePiece(off, int64(len(p)))
	return ok && s.legs[leg].dev.WriteAsync(ctx, p, devOff, done)
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

// AsyncErr counts the request against its leg, as legIO does, and gives
// the device's error.
func (s *striped) AsyncErr(kind AsyncKind, off, n int64, err error) error {
	leg, devOff, _ := s.locate(off)
	l := &s.legs[leg]
	err = l.dev.asyncErr(kind, devOff, err)
	l.stats.Ops.Add(1)
	if err == nil {
		l.stats.Bytes.Add(uint64(n))
	}
	return s.count(leg, err)
}
