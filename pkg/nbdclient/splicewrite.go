package nbdclient

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Spliced writes: a server that serves a table over remote devices can
// move a large write's payload from its client's socket into a pipe with
// splice(2), and from the pipe into the remote's socket, without the data
// entering user space: two copies of every byte saved on the front host
// (SpliceWriteAsync is that second half). On Linux 6.5 and later a UNIX
// socket takes the pipe's pages by reference (MSG_SPLICE_PAGES); before
// that, and over TCP, the kernel copies once, as write(2) would.
//
// The pipe is its caller's again once done is called: so a reply that
// comes while the pipe still holds part of the payload (a server that
// answered before reading the whole request, which a correct server never
// does, since it must read the payload to find the next request) ends the
// connection instead of completing the call (errRepliedEarly), and the
// writer is waited for before the call fails.
//
// A spliced write whose connection drops is sent again once, as any
// write, if none of it had left the pipe: the retry reads the payload
// out of the pipe (unsentPayload). One that had begun to go out cannot be
// sent again, and fails with ErrDisconnected (EIO).

// errRepliedEarly: a server answered a spliced write before its payload
// was all sent.
var errRepliedEarly = errors.New("nbdclient: the server answered a write before its payload was sent")

// SpliceWriteAsync starts writing, at off, inPipe bytes taken from pipe
// (the read end of a pipe(2) holding exactly those bytes) followed by
// tail, and reports true; done then gets the result, and neither pipe nor
// tail is touched after done is called. (A payload that came off a socket
// in many small pieces may not fit a pipe's slots whole: its tail then
// comes from memory.) After an error the pipe may still hold part of its
// bytes. It reports false, having done nothing, where WriteAsync would,
// and on a connection without a descriptor (TLS): then write the data the
// usual way.
func (cl *Client) SpliceWriteAsync(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64, done func(error)) bool {
	n := inPipe + int64(len(tail))
	if pipe < 0 || inPipe <= 0 || cl.writable() != nil || n > cl.maxRequest() {
		return false
	}
	return cl.startAsync(ctx, request{typ: cmdWrite, offset: uint64(off), length: uint32(n)}, tail, nil, pipe, -1, done)
}

// SplicesWrites says whether SpliceWriteAsync may take writes: the
// connections have descriptors (not TLS) and the export is writable.
func (cl *Client) SplicesWrites() bool { return cl.splices && cl.writable() == nil }

// spliceOut moves n bytes from pipe into the socket, waiting for room in
// the socket as a write would. Called by the writer, with wmu held.
func (c *conn) spliceOut(pipe int, n int64) error {
	var serr error
	werr := c.raw.Write(func(fd uintptr) bool {
		c.parked.Store(false)
		for n > 0 {
			m, err := unix.Splice(pipe, nil, int(fd), nil, int(n), unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MORE)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN && queued(pipe) > 0:
				c.park()
				return false // the socket is full: wait for room
			case err == unix.EAGAIN, err == nil && m == 0:
				serr = fmt.Errorf("pipe short of the payload by %d bytes", n)
				return true
			case err != nil:
				serr = err
				return true
			}
			n -= m
		}
		return true
	})
	if werr != nil {
		return werr
	}
	return serr
}

// unsentPayload reads a failed spliced write's payload out of its pipe,
// with its tail, for a retry; false when part of it had been sent already.
func unsentPayload(cl *call) ([]byte, bool) {
	n := int(cl.req.length) - len(cl.payload)
	if queued(cl.src) != n {
		return nil, false
	}
	p := make([]byte, n, int(cl.req.length))
	for k := 0; k < n; {
		m, err := unix.Read(cl.src, p[k:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || m == 0 {
			return nil, false
		}
		k += m
	}
	return append(p, cl.payload...), true
}
