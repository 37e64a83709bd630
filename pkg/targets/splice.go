package targets

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Every target can splice (Target.SpliceTo): splice(2) from a backing
// device puts references to its page-cache pages in the pipe, and the NBD
// server later splices the pipe into the socket. A large read then costs no
// copy in gdm at all, where pread plus write cost two.

// ErrPipeFull is SpliceTo's answer when the pipe has no room for the range
// (a range that starts or ends inside a page needs a slot for that page).
// The caller reads the range the ordinary way.
var ErrPipeFull = errors.New("targets: pipe full")

// SpliceTo moves [off, off+n) of the device into pipe. A remote device
// splices from its connection's socket (remote_dev.go).
func (d *Dev) SpliceTo(pipe int, off, n int64) error {
	if d.remote != nil {
		return d.remoteSplice(pipe, off, n)
	}
	if err := d.blockMisaligned("read", off, n); err != nil {
		return err
	}
	if d.direct != nil { // read past the page cache instead (dev_direct.go)
		return ErrPipeFull
	}
	return fillPipe(n, func(left int64) (int64, error) {
		m, err := unix.Splice(d.fd, &off, pipe, nil, int(left), unix.SPLICE_F_NONBLOCK) // advances off
		if err != nil {
			return 0, fmt.Errorf("targets: splice %s at %d: %w", d.path, off, err)
		}
		if m == 0 {
			return 0, fmt.Errorf("%w: splice %s at %d", ErrShortIO, d.path, off)
		}
		return m, nil
	})
}

// fillPipe calls put until n bytes are in the pipe, retrying EINTR and
// turning EAGAIN (no room left) into ErrPipeFull.
func fillPipe(n int64, put func(left int64) (int64, error)) error {
	for n > 0 {
		m, err := put(n)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return ErrPipeFull
		case err != nil:
			return err
		}
		n -= m
	}
	return nil
}

// zeroPage is what the zero target writes into pipes.
var zeroPage [4096]byte

// SpliceTo writes n zero bytes (a copy, but zero targets are rarely read
// in bulk).
func (zeroTarget) SpliceTo(_ context.Context, pipe int, _, n int64) error {
	return fillPipe(n, func(left int64) (int64, error) {
		m, err := unix.Write(pipe, zeroPage[:min(left, int64(len(zeroPage)))])
		if err != nil {
			return 0, fmt.Errorf("targets: zeros into pipe: %w", err)
		}
		return int64(m), nil
	})
}

// SpliceTo answers as ReadAt does.
func (errorTarget) SpliceTo(context.Context, int, int64, int64) error { return ErrTargetError }

// SpliceTo moves the range from the device.
func (l *linear) SpliceTo(_ context.Context, pipe int, off, n int64) error {
	return l.dev.SpliceTo(pipe, l.offset+off, n)
}

// SpliceTo moves the range chunk by chunk from the legs' devices, in order.
// The legs' counters are bumped once the outcome is known: after
// ErrPipeFull not at all, since the caller then reads the whole range with
// ReadAt, which counts it.
func (s *striped) SpliceTo(_ context.Context, pipe int, off, n int64) error {
	start := off
	for n > 0 {
		leg, devOff, room := s.locate(off)
		m := min(room, n)
		err := s.legs[leg].dev.SpliceTo(pipe, devOff, m)
		if err == ErrPipeFull {
			return err
		}
		if err != nil {
			s.countSpliced(start, off-start)
			s.legs[leg].stats.Ops.Add(1)
			err = s.count(leg, err)
			s.readRest(off+m, n-m)
			return err
		}
		off += m
		n -= m
	}
	s.countSpliced(start, off-start)
	return nil
}

// readRest reads [off, off+n), the part of a spliced read after the piece
// that failed, into a scratch buffer, for the legs' counters alone: dm
// submits every piece of a read whichever fails, and each failed piece
// counts against its leg, as rw does. The caller discards the pipe after
// an error, so the data goes nowhere. Only a failed read pays for it.
func (s *striped) readRest(off, n int64) {
	if n <= 0 {
		return
	}
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		m := min(n, int64(len(buf)))
		s.rw(buf[:m], off, false) // its error is the request's no more
		off += m
		n -= m
	}
}

// countSpliced counts the pieces of [off, off+n) a splice moved, a chunk
// an op, as ReadAt counts them.
func (s *striped) countSpliced(off, n int64) {
	for n > 0 {
		leg, _, room := s.locate(off)
		m := min(room, n)
		s.legs[leg].stats.Ops.Add(1)
		s.legs[leg].stats.Bytes.Add(uint64(m))
		off += m
		n -= m
	}
}

// PipeWriter is an optional Target capability: a write whose data is
// already in a pipe (the NBD server spliced it there from its client's
// socket) goes from the pipe into the backing file with splice(2). The
// page cache then copies it once; read into memory and written with
// pwrite, it was copied twice, once out of the socket and once into the
// file.
type PipeWriter interface {
	// CanWriteFromPipe says whether WriteFromPipe may take writes at all
	// (a linear target over a local file or block device), so that a
	// caller asks before it fills a pipe.
	CanWriteFromPipe() bool
	// WriteFromPipe writes inPipe bytes taken from pipe (the read end of
	// a pipe(2) holding exactly them), then tail, at off. It answers
	// ErrPipeFull, having taken nothing, when it cannot; after any
	// other error the pipe may still hold part of its bytes.
	WriteFromPipe(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64) error
}

// WriteFromPipe moves n bytes from pipe into the device at off. A remote
// device answers ErrPipeFull, having taken nothing: its writes from a pipe
// are SpliceWriteAsync's; so does a block device written past the page
// cache, which a pipe's pages (at any offset) cannot be written to
// (dev_direct.go).
func (d *Dev) WriteFromPipe(pipe int, n, off int64) error {
	if d.remote != nil {
		return ErrPipeFull
	}
	if err := d.blockMisaligned("write", off, n); err != nil {
		return err
	}
	if d.direct != nil {
		return ErrPipeFull
	}
	for n > 0 {
		m, err := unix.Splice(pipe, nil, d.fd, &off, int(n), 0) // advances off
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("targets: splice into %s at %d: %w", d.path, off, err)
		}
		if m == 0 {
			return fmt.Errorf("%w: splice into %s at %d", ErrShortIO, d.path, off)
		}
		n -= m
	}
	return nil
}
