package targets

import (
	"sync"
	"sync/atomic"

	"github.com/gdm-project/gdm/pkg/aio"
	"golang.org/x/sys/unix"
)

// A striped request across chunks, on legs that are all block devices
// read with O_DIRECT, goes to the kernel as one vectored AIO request per
// leg (aio.SubmitV): a leg's chunks of a contiguous range lie one after
// another on the leg, and apart in the request's memory, so one preadv or
// pwritev per leg moves them all, straight to or from that memory. The
// blocking path (rwParallel) walks each leg's chunks one pread at a time,
// so a 1 MiB request over 64 KiB chunks had one chunk in flight per leg.
//
// Accounting and errors stay those of the blocking path, piece by piece,
// as dm counts each clone bio: a leg that completes counts each of its
// pieces; a leg whose vector fails is redone piece by piece the blocking
// way (legIO), on a goroutine, so that only the pieces that fail count
// against it and the error says where. Requests the vector cannot take
// (memory or chunks not aligned for O_DIRECT, a leg with more pieces than
// an iovec may hold) take the blocking path whole.

// maxIovecs is the most buffers one vectored request may carry (the
// kernel's UIO_MAXIOV).
const maxIovecs = 1024

// stripedVec is one striped request across chunks, in flight.
type stripedVec struct {
	s     *striped
	write bool
	p     []byte      // the caller's memory
	buf   []byte      // the memory the I/O uses: p, or ab's
	ab    *alignedBuf // a bounce buffer when p is not aligned
	off   int64
	done  func(error)
	legs  []vecLeg
	left  atomic.Int32 // legs still in flight
	mu    sync.Mutex
	first error
}

// vecLeg is a request's part on one leg: its pieces, in the order they
// lie on the leg from devOff.
type vecLeg struct {
	v      *stripedVec
	leg    int
	devOff int64
	bytes  int64
	iov    []unix.Iovec
	pieces []vecPiece
}

// vecPiece is one chunk's piece: where it lies in the request and on the
// leg.
type vecPiece struct{ at, n, devOff int64 }

// startVectored starts a request of p at off across chunks; false: not
// started, done will not be called.
func (s *striped) startVectored(write bool, p []byte, off int64, done func(error)) bool {
	c := aio.Shared()
	if c == nil || len(p) == 0 {
		return false
	}
	v := &stripedVec{s: s, write: write, p: p, buf: p, off: off, done: done}
	if !aligned(p) {
		if len(p) > directChunk {
			return false
		}
		v.ab = getAlignedBuf(len(p))
		v.buf = v.ab.b[:len(p)]
	}
	if !v.plan() {
		v.release()
		return false
	}
	if write && v.ab != nil {
		copy(v.buf, p)
	}
	v.left.Store(int32(len(v.legs)))
	for i := range v.legs {
		l := &v.legs[i]
		if !c.SubmitV(write, s.legs[l.leg].dev.directFD, l.iov, l.devOff, l.completed) {
			go l.redo() // not taken now: the blocking way, off the caller
		}
	}
	return true
}

// plan splits the request into its legs' vectors, and reports whether
// every piece meets O_DIRECT's alignment and every leg's vector fits.
// Consecutive chunks go to the legs in turn, so piece k is on the leg
// of v.legs[k % stripes], and each leg's pieces follow one another on it.
func (v *stripedVec) plan() bool {
	s := v.s
	for k, at := 0, int64(0); at < int64(len(v.p)); k++ {
		leg, devOff, room := s.locate(v.off + at)
		n := min(room, int64(len(v.p))-at)
		if uintptr(at)%directAlign != 0 || !s.legs[leg].dev.directOK(devOff, n) {
			return false
		}
		if k < len(s.legs) {
			v.legs = append(v.legs, vecLeg{v: v, leg: leg, devOff: devOff})
		}
		l := &v.legs[k%len(s.legs)]
		if len(l.iov) == maxIovecs {
			return false
		}
		piece := v.buf[at : at+n]
		l.iov = append(l.iov, unix.Iovec{Base: &piece[0]})
		l.iov[len(l.iov)-1].SetLen(int(n))
		l.pieces = append(l.pieces, vecPiece{at: at, n: n, devOff: devOff})
		l.bytes += n
		at += n
	}
	return true
}

// completed is a leg's vector's done, on the AIO reaper: counted piece by
// piece, or redone piece by piece on a goroutine if it failed.
func (l *vecLeg) completed(err error) {
	if err != nil {
		go l.redo()
		return
	}
	st := l.v.s.legs[l.leg].stats
	st.Ops.Add(uint64(len(l.pieces)))
	st.Bytes.Add(uint64(l.bytes))
	l.v.legDone(nil)
}

// redo does the leg's pieces the blocking way, each counted as legIO
// counts it, all of them whatever became of the others.
func (l *vecLeg) redo() {
	var first error
	for _, pc := range l.pieces {
		if err := l.v.s.legIO(l.leg, l.v.buf[pc.at:pc.at+pc.n], pc.devOff, l.v.write); err != nil && first == nil {
			first = err
		}
	}
	l.v.legDone(first)
}

// legDone records a leg's result; the last leg finishes the request.
func (v *stripedVec) legDone(err error) {
	if err != nil {
		v.mu.Lock()
		if v.first == nil {
			v.first = err
		}
		v.mu.Unlock()
	}
	if v.left.Add(-1) != 0 {
		return
	}
	if !v.write && v.ab != nil && v.first == nil {
		copy(v.p, v.buf)
	}
	v.release()
	v.done(settle(v.first))
}

// release gives back the bounce buffer, if any.
func (v *stripedVec) release() {
	if v.ab != nil {
		putAlignedBuf(v.ab)
		v.ab = nil
	}
}
