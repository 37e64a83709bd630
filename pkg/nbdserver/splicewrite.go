package nbdserver

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// Spliced writes: a large write that the export forwards to another host
// (SpliceWriter: a table over a remote leg) has its payload moved from
// the client's socket into a pipe with splice(2), and the export's remote
// connection splices it on into its own socket. Read into memory and
// written out again, each byte was copied twice on this host; through the
// pipe it is not copied at all where the kernel can pass pages on (a UNIX
// socket's since Linux 6.5), and never more than once.
//
// The payload is in the pipe before the request is offered, so a client
// that sends it slowly holds up only its own reading turn, never the
// remote connection, which other clients share. What the read buffer
// already holds of the payload is copied into the pipe first. A pipe has a
// slot per piece the socket hands it, and a payload that came in many
// small pieces may run out of slots before bytes: what is left then is
// read into memory, and goes out after the pipe's part as the write's
// tail.
//
// A write the remote path does not take stays in its batch with its pipe,
// and is served there (writeFromPipe): into a local file from the pipe
// when the export writes from pipes (PipeWriter: one copy, into the page
// cache, instead of two), else, like a write that check refuses, with its
// payload copied out of the pipe into memory (unpipe), the usual way.

// spliceWritable says whether write r's payload goes into a pipe: large
// enough to be worth it (more than the read buffer would keep, and at
// least spliceMin), small enough for a pipe, no FUA (FUA writes are not
// asynchronous), and the export would take it: on to a remote leg
// (SpliceWriter), or, while the tuner finds it pays, into a local file
// (PipeWriter, see writeFromPipe).
func (c *conn) spliceWritable(r request) bool {
	off, n := int64(r.offset), int64(r.length)
	if n <= maxTake || n < spliceMin || n > pipeSize || r.flags&cmdFlagFUA != 0 {
		return false
	}
	if c.writeSplicer != nil && c.writeSplicer.MaySpliceWrite(off, n) {
		return true
	}
	return c.pipeWriter != nil && c.knobs.Load()&knobPipeWrite != 0 && c.pipeWriter.MayWriteFromPipe(off, n)
}

// readPayloadPipe reads w's payload into a pipe. It reports false, having
// read nothing, when no pipe is to be had: read it the usual way. An error
// is a payload that did not arrive (a dead socket, the payload timeout);
// the pipe is then discarded.
func (c *conn) readPayloadPipe(w *work) (bool, error) {
	n := int(w.r.length)
	p := c.srv.pipes.getFor(int64(n))
	if p == nil {
		return false, nil
	}
	left := n
	if k := min(c.br.Buffered(), n); k > 0 {
		b, _ := c.br.Peek(k)
		err := writeAll(p.w, b)
		c.br.Discard(k)
		left -= k
		if err != nil {
			c.srv.pipes.discard(p)
			return true, err
		}
	}
	err := c.spliceFromSocket(p.w, left)
	if errors.Is(err, errPipeFull) {
		// The payload came in so many small pieces (a slot each) that
		// the pipe ran out of slots before bytes: the rest is the tail,
		// read into memory.
		if have := queued(p.r); have < 0 || have > n {
			err = fmt.Errorf("nbdserver: a pipe holds %d bytes of a %d-byte payload", have, n)
		} else {
			w.pooled = getBuf(n - have)
			w.payload = *w.pooled
			_, err = io.ReadFull(c.br, w.payload)
		}
	}
	if err != nil {
		c.srv.pipes.discard(p)
		return true, err
	}
	w.pipe, w.inPipe = p, n-len(w.payload)
	return true, nil
}

// errPipeFull is a pipe that has no slot left for more of a payload.
var errPipeFull = errors.New("nbdserver: pipe full")

// spliceFromSocket moves n bytes from the client's socket into pipe,
// waiting for the socket as a read does (and under its deadline). The
// pipe has room for the bytes, but perhaps not slots for their pieces
// (errPipeFull).
func (c *conn) spliceFromSocket(pipe, n int) error {
	var serr error
	rerr := c.raw.Read(func(fd uintptr) bool {
		n, serr = spliceSome(int(fd), pipe, n)
		if serr == unix.EAGAIN {
			if queued(int(fd)) <= 0 {
				return false // wait for the client
			}
			serr = errPipeFull
		}
		return true
	})
	if rerr != nil {
		return rerr
	}
	return serr
}

// startSpliceWrite offers a write whose payload is in a pipe (and its
// tail, if any, in memory) to the export's remote leg (see startAsync);
// refused, it keeps its pipe and is served in its batch (writeFromPipe).
func (c *conn) startSpliceWrite(w *work) bool {
	r := w.r
	if c.writeSplicer != nil && c.check(r) == 0 {
		a := c.newAsyncReq(w, nil)
		c.begin(a)
		if c.writeSplicer.SpliceWriteAsync(c.ctx, w.pipe.r, int64(w.inPipe), w.payload, int64(r.offset), a.doneFn) {
			return true
		}
		c.undo(a)
	}
	return false
}

// writeFromPipe serves write w, whose payload is in a pipe (and its tail,
// if any, in memory), from the pipe into the export's file when the export
// takes it (PipeWriter); it reports whether it did. Else the payload is
// copied into memory (unpipe) for the usual path, which also refuses what
// check refuses.
func (c *conn) writeFromPipe(w *work, rep *reply) bool {
	r := w.r
	if c.pipeWriter == nil || c.check(r) != 0 {
		c.unpipe(w)
		return false
	}
	err := c.pipeWriter.WriteFromPipe(c.ctx, w.pipe.r, int64(w.inPipe), w.payload, int64(r.offset))
	if errors.Is(err, ErrNoSplice) {
		c.unpipe(w)
		return false
	}
	c.srv.pipes.putAfter(w.pipe, err)
	w.pipe, w.inPipe = nil, 0
	c.srv.stats.PipeWrites.Add(1)
	c.simpleReply(rep, r.cookie, replyCode(r, err))
	return true
}

// unpipe moves w's payload from its pipe (and tail) into memory. The pipe
// holds its part whole; failing to read it back is a bug, and the panic
// ends the connection (the reader's recover) rather than write anything
// else.
func (c *conn) unpipe(w *work) {
	p, k := w.pipe, w.inPipe
	buf := getBuf(int(w.r.length))
	if err := readAll(p.r, (*buf)[:k]); err != nil {
		w.pipe, w.inPipe = nil, 0 // discarded here, not again by handle's recover
		c.srv.pipes.discard(p)
		putBuf(buf)
		panic(fmt.Sprintf("nbdserver: write payload lost in its pipe: %v", err))
	}
	c.srv.pipes.put(p)
	copy((*buf)[k:], w.payload)
	if w.pooled != nil {
		putBuf(w.pooled)
	}
	w.pipe, w.inPipe = nil, 0
	w.pooled, w.payload = buf, *buf
}

// putAfter takes back a pipe a spliced write is done with: for reuse when
// the write succeeded and left it empty, else closed (it may hold part of
// the payload).
func (pp *pipePool) putAfter(p *pipe, err error) {
	if err == nil && queued(p.r) == 0 {
		pp.put(p)
	} else {
		pp.discard(p)
	}
}

// queued is how many bytes wait to be read in socket or pipe fd
// (FIONREAD); -1 if it cannot tell.
func queued(fd int) int {
	q, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD, SIOCINQ on a socket
	if err != nil {
		return -1
	}
	return q
}

// writeAll copies b into a pipe with room for it.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		m, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

// readAll reads len(b) bytes from a pipe that holds them.
func readAll(fd int, b []byte) error {
	for len(b) > 0 {
		m, err := unix.Read(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err == nil && m == 0 {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}
