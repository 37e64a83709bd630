package nbdserver

import (
	"context"
	"errors"
	"runtime/debug"
	"syscall"
)

// Large reads of a remote leg, spliced without a goroutine waiting: the
// reader takes a pipe and starts the read (AsyncSpliceReader); the leg's
// reply reader splices the data from its socket into the pipe and calls
// done, which queues the reply with its pipe; writeNoWait splices it into
// the client's socket on that same goroutine as far as the socket takes
// it, without waiting. Served the usual way (SpliceReader), a worker took
// the read turn, parked until the leg's reader woke it, and spliced the
// reply out itself: measured on the 2-core VM, 2.2 context switches per
// 1 MiB read in the front daemon, against 1.1 for a local file.

// AsyncSpliceReader is an optional capability of an AsyncExport that
// splices large reads from its remote legs' sockets: SpliceReadAsync
// starts moving length bytes at off into pipe (the write end of a
// pipe(2), with room for them) and works as AsyncExport's ReadAsync
// otherwise. done gets an error wrapping ErrNoSplice when the range was
// not moved that way (the pipe may hold part of it): the server then
// reads it with ReadAt.
type AsyncSpliceReader interface {
	SpliceReadAsync(ctx context.Context, pipe int, off, length int64, done func(error)) bool
}

// mightSpliceAsync says whether a read that may be spliced (spliceable)
// is offered to the export's asynchronous splice now: the export has one,
// and the tuner finds that splicing pays.
func (c *conn) mightSpliceAsync() bool {
	return c.asyncSplicer != nil && c.knobs.Load()&knobSplice != 0
}

// startSpliceRead offers a large read (checked by startAsync) to the
// export's asynchronous splice, with a pipe from the pool; it reports
// whether the export took it. Called by the reader, with rmu held.
func (c *conn) startSpliceRead(w *work) bool {
	r := w.r
	n := int64(r.length)
	p := c.srv.pipes.getFor(n)
	if p == nil {
		return false
	}
	a := c.newAsyncReq(w, p)
	c.begin(a)
	if !c.asyncSplicer.SpliceReadAsync(c.ctx, p.w, int64(r.offset), n, a.doneFn) {
		c.undo(a)
		c.srv.pipes.put(p) // untouched
		return false
	}
	c.countLargeRead(n)
	return true
}

// countLargeRead counts a read of n bytes that could have been spliced
// and was started asynchronously, spliced or not, for the tuner: it
// times windows of the requests read, and this one is in no read turn's
// batch (readTurn counts those). Called by the reader, with rmu held.
func (c *conn) countLargeRead(n int64) {
	c.knobs.Store(uint32(c.tune.count(1, n, knobSplice, monoNow)))
}

// splicedReply builds the reply of a spliced read that completed with
// err: the data in the pipe, or the error. It reports false when the
// export did not move the range (ErrNoSplice): the pipe is dropped, and a
// goroutine of its own reads the range the ordinary way and finishes the
// request (readAgain).
func (a *asyncReq) splicedReply(rep *reply, err error) bool {
	c, r, p := a.c, a.w.r, a.pipe
	a.pipe = nil
	if err == nil {
		rep.pipe, rep.pipeLen = p, int(r.length)
		c.readReplyHead(rep, r)
		return true
	}
	c.srv.pipes.discard(p) // it may hold part of the range
	if errors.Is(err, ErrNoSplice) {
		c.srv.stats.SplicedReads.Add(^uint64(0))
		go a.readAgain()
		return false
	}
	c.errorReply(rep, r, ErrorCode(err))
	return true
}

// readAgain reads with ReadAt a range the export did not splice (its
// connection to the remote dropped, say: ReadAt retries) and finishes the
// request with what it read. It runs on a goroutine of its own, since it
// may wait; the request still counts in asyncs and inflight until done.
func (a *asyncReq) readAgain() {
	c, r := a.c, a.w.r
	a.buf = getBuf(int(r.length))
	err := error(syscall.EIO)
	defer func() {
		if p := recover(); p != nil {
			c.srv.stats.Panics.Add(1)
			c.log.Error("panic serving a request", "panic", p, "cmd", r.typ, "stack", string(debug.Stack()))
		}
		a.done(err)
	}()
	err = c.exp.ReadAt(c.ctx, *a.buf, int64(r.offset))
}
