package nbdclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Spliced reads: a server that serves a table over remote devices can
// move a large read's data from the remote socket into a pipe with
// splice(2), and from the pipe into its own client's socket, without the
// data ever entering user space. SpliceRead is that first half.
//
// The reader splices a reply's payload straight from the socket; what
// the buffered reader already holds of it is copied in first. Bytes read
// ahead cost more than the copy: in the pipe they take slots of their own
// next to the spliced pages, and a full-size read must fit the pipe's
// slots exactly. So while a spliced read is in flight the reader reads
// reply headers without reading ahead (readHead).

// ErrNoSplice is SpliceRead's answer when it did not move the range: a
// connection without a descriptor (TLS), a server that may answer a read
// in pieces out of order, a range longer than one request, a pipe without
// room for the data, or a connection that dropped under it. The pipe may
// hold part of the range; read the range with ReadAt, which retries.
var ErrNoSplice = errors.New("nbdclient: range not spliced")

// SpliceRead moves n bytes at off into pipe (the write end of a pipe(2),
// non-blocking, with room for them), in order.
func (cl *Client) SpliceRead(ctx context.Context, pipe int, off, n int64) error {
	if err := cl.check(off, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	req, ok := cl.spliceRequest(pipe, off, n)
	if !ok {
		return ErrNoSplice
	}
	err := cl.run(ctx, req, nil, nil, pipe).err
	if overflowed(req, err) { // refused unfragmented: see overflow.go
		cl.noteOverflow(n)
	}
	if errors.Is(err, ErrDisconnected) || overflowed(req, err) {
		return fmt.Errorf("%w: %w", ErrNoSplice, err)
	}
	return err
}

// SpliceReadAsync starts moving n bytes at off into pipe, as SpliceRead
// does, and reports true; done then gets the result, as for ReadAsync
// (async.go). It reports false, having sent nothing and never to call
// done, where SpliceRead would answer ErrNoSplice at once or ReadAsync
// would refuse. done gets an error wrapping ErrNoSplice where SpliceRead
// returns one, the pipe perhaps holding part of the range.
func (cl *Client) SpliceReadAsync(ctx context.Context, pipe int, off, n int64, done func(error)) bool {
	req, ok := cl.spliceRequest(pipe, off, n)
	return ok && cl.splices && cl.startAsync(ctx, req, nil, nil, -1, pipe, done)
}

// spliceRequest is the read of n bytes at off that splices into pipe,
// or false where the data cannot be spliced: no pipe, more than one
// request, or a server that may answer a read in pieces out of order
// (structured replies without DF).
func (cl *Client) spliceRequest(pipe int, off, n int64) (request, bool) {
	flags := cl.readFlags(n)
	switch {
	case n > cl.maxRequest() || pipe < 0:
		return request{}, false
	case cl.info.Structured && flags&cmdFlagDF == 0:
		return request{}, false
	}
	return request{typ: cmdRead, flags: flags, offset: uint64(off), length: uint32(n)}, true
}

// readHead reads len(p) bytes of a reply's header. While spliced reads
// are in flight, or the last reply was a spliced read's, it reads no
// further than p from the socket, so that a payload that follows stays
// there to be spliced. The second is for a reader that has just
// completed the only spliced read in flight: the next one is likely
// started while it waits, and its payload, read ahead, would be copied.
// Any other reply ends that, so that small replies are read in bulk.
func (c *conn) readHead(p []byte) error {
	if c.splicing.Load() == 0 && !c.splicedLast {
		_, err := io.ReadFull(c.r, p)
		return err
	}
	k, _ := c.r.Read(p[:min(c.r.Buffered(), len(p))]) // from the buffer only
	if k < len(p) {
		c.releaseHeld() // the socket may make it wait
	}
	_, err := io.ReadFull(c.nc, p[k:])
	return err
}

// errPipeRoom is a pipe that has no room left for a spliced read's data.
var errPipeRoom = errors.New("nbdclient: pipe full")

// spliceFill moves n bytes of payload at off into the call's pipe.
// Called with cl.bufMu held. Data that cannot go into the pipe (it is
// full, or the piece is out of order) is read and dropped, and the call
// ends with ErrNoSplice; the stream stays whole.
func (c *conn) spliceFill(cl *call, off, n int64) error {
	left := n
	if cl.spliceErr == nil && off != cl.covered {
		cl.spliceErr = fmt.Errorf("%w: read data out of order", ErrNoSplice)
	}
	if cl.spliceErr == nil {
		if k := min(int64(c.r.Buffered()), left); k > 0 {
			c.copiedAhead.Add(1)
			b, _ := c.r.Peek(int(k))
			err := writePipe(cl.pipe, b)
			c.r.Discard(int(k))
			left -= k
			if err != nil {
				cl.spliceErr = fmt.Errorf("%w: %w", ErrNoSplice, err)
			} else if left, err = c.copyToPage(cl, off+n-left, left); err != nil {
				return fmt.Errorf("nbdclient: read payload: %w", err)
			}
		}
	}
	if cl.spliceErr == nil && left > 0 {
		var err error
		left, err = c.splice(cl.pipe, left)
		switch {
		case errors.Is(err, errPipeRoom):
			cl.spliceErr = fmt.Errorf("%w: %w", ErrNoSplice, err)
		case err != nil:
			return fmt.Errorf("nbdclient: splice payload: %w", err)
		}
	}
	if left > 0 { // what did not go into the pipe is dropped
		if _, err := io.CopyN(io.Discard, c.r, left); err != nil {
			return fmt.Errorf("nbdclient: read payload: %w", err)
		}
	}
	cl.covered += n
	return nil
}

// copyToPage copies payload from the socket into the call's pipe, which
// holds inPipe bytes of it, until they end on a page boundary (or left
// is gone), and returns what is left to read; an error is the socket's.
// Why: the reader may have read a reply ahead before its read was
// spliced (it began to read while no spliced read was in flight), and
// bytes copied into a pipe take pages of their own. Spliced from there,
// every page of the payload would start part-way and take a slot more
// than the pipe holds for a full-size read. The sender's pages (a server
// splicing from its file) begin on the payload's page boundaries, so
// from one on they fit the pipe exactly.
func (c *conn) copyToPage(cl *call, inPipe, left int64) (int64, error) {
	k := min(left, (pageSize-inPipe%pageSize)%pageSize)
	if k == 0 {
		return left, nil
	}
	if c.pad == nil {
		c.pad = make([]byte, pageSize)
	}
	b := c.pad[:k]
	c.releaseHeld() // the socket may make it wait
	if _, err := io.ReadFull(c.nc, b); err != nil {
		return left, err
	}
	if err := writePipe(cl.pipe, b); err != nil {
		cl.spliceErr = fmt.Errorf("%w: %w", ErrNoSplice, err)
	}
	return left - k, nil
}

// pageSize is the size of the pages a pipe's slots hold.
var pageSize = int64(os.Getpagesize())

// splice moves n bytes from the socket into pipe, waiting for the socket
// as a read would; it returns what is left when the pipe fills up.
func (c *conn) splice(pipe int, n int64) (left int64, err error) {
	c.releaseHeld() // the socket may make it wait
	var serr error
	tries := 0 // EAGAINs in a row with data waiting in the socket
	rerr := c.raw.Read(func(fd uintptr) bool {
		for n > 0 {
			m, err := spliceIn(int(fd), pipe, n)
			if err == unix.EAGAIN {
				// Either the socket is empty (wait for it) or the pipe is
				// full: data that stays waiting over two tries says the pipe.
				if queued(int(fd)) == 0 {
					return false
				}
				if tries++; tries < 2 {
					continue
				}
				err = errPipeRoom
			}
			if err != nil {
				serr = err
				return true
			}
			tries = 0
			n -= m
		}
		return true
	})
	if rerr != nil {
		return n, rerr
	}
	return n, serr
}

// spliceIn is one splice(2) of up to n bytes from socket fd into pipe,
// retried on EINTR; an end of stream is io.ErrUnexpectedEOF.
func spliceIn(fd, pipe int, n int64) (int64, error) {
	for {
		m, err := unix.Splice(fd, nil, pipe, nil, int(n), unix.SPLICE_F_NONBLOCK)
		if err == unix.EINTR {
			continue
		}
		if err == nil && m == 0 {
			err = io.ErrUnexpectedEOF
		}
		return m, err
	}
}

// queued is how many bytes wait to be read in socket or pipe fd
// (FIONREAD); 0 if it cannot tell.
func queued(fd int) int {
	q, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD, SIOCINQ on a socket
	if err != nil {
		return 0
	}
	return q
}

// writePipe copies b into pipe.
func writePipe(pipe int, b []byte) error {
	for len(b) > 0 {
		m, err := unix.Write(pipe, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return errPipeRoom
		case err != nil:
			return err
		}
		b = b[m:]
	}
	return nil
}

// zeroPage is what a hole chunk of a spliced read writes.
var zeroPage [4096]byte

// spliceZeros writes n zeros at off (a hole chunk) into the call's pipe.
// Called with cl.bufMu held.
func (c *conn) spliceZeros(cl *call, off, n int64) {
	if cl.spliceErr == nil && off != cl.covered {
		cl.spliceErr = fmt.Errorf("%w: read data out of order", ErrNoSplice)
	}
	for cl.spliceErr == nil && n > 0 {
		m := min(n, int64(len(zeroPage)))
		if err := writePipe(cl.pipe, zeroPage[:m]); err != nil {
			cl.spliceErr = fmt.Errorf("%w: %w", ErrNoSplice, err)
		}
		n -= m
	}
}
