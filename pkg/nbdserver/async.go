package nbdserver

import (
	"context"
	"sync"
)

// AsyncExport is an optional Export capability for backends that answer
// later rather than block: a table whose request lands on a remote device
// (an NBD export of another host) starts the request there and is told
// when its reply came in.
//
// Why: a request to a remote leg takes ~100 µs. Served the usual way, a
// worker takes the read turn, hands it on (a wake-up), sends the request
// on the leg and parks until the leg's reply reader wakes it (another
// wake-up), then writes the reply: two or three context switches a
// request. Served asynchronously, the reader starts the request and reads
// on, keeping the turn; the leg's reply reader completes the request,
// and the reply is queued to this connection's writer.
//
// ReadAsync and WriteAsync report false, having done nothing and never to
// call done, when they will not take the request (not on a remote leg,
// the device suspended, a leg with no connection or slot free now); the
// server then serves it the usual way, which waits where need be. When
// they report true, done is called exactly once, perhaps before they
// return, and p stays untouched after it. done never blocks: the server
// only queues the reply there (see asyncReq.done). Writes with FUA are
// not offered (served the usual way).
type AsyncExport interface {
	// MayAsync says, cheaply, whether the export might take any request
	// now (its table has a remote leg at all): when it says no, the
	// server offers nothing and prepares nothing for the offer, so an
	// export over local files pays one call per request for the path.
	MayAsync() bool
	ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool
	WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool
}

// asyncReq is a request served asynchronously: what its completion needs.
// It is pooled, with its done bound once (doneFn): an asynchronous request
// allocated both, each time, before.
type asyncReq struct {
	c      *conn
	w      work
	buf    *[]byte // a read's destination, pooled
	pipe   *pipe   // a spliced read's destination (async_splice.go)
	doneFn func(error)
}

var asyncReqs = sync.Pool{New: func() any { return new(asyncReq) }}

// newAsyncReq is w's asyncReq, for c, reading into p if not nil. It goes
// back to the pool when the request is done, or undone.
func (c *conn) newAsyncReq(w *work, p *pipe) *asyncReq {
	a := asyncReqs.Get().(*asyncReq)
	if a.doneFn == nil {
		a.doneFn = a.done // once per pooled asyncReq
	}
	a.c, a.w, a.pipe = c, *w, p
	return a
}

// free puts a back in the pool: its request is finished (done) or was
// never taken (undo), and nothing holds a or its doneFn any longer.
func (a *asyncReq) free() {
	*a = asyncReq{doneFn: a.doneFn}
	asyncReqs.Put(a)
}

// startAsync offers the request just read to the export's asynchronous
// path; it reports whether the export took it. A request it does not
// offer (other commands, FUA writes, refusals) or the export refuses is
// served the usual way. A read large enough to splice is offered spliced
// first where the tuner has splicing on (async_splice.go), then into
// memory: a block device read with O_DIRECT, or crypt, splices nothing,
// and its large reads were served blocking before. Called by the reader,
// with rmu held: taking a request costs no hand-off.
//
// A taken request counts in inflight and in async until done; its budget
// goes back when its reply is written, as any reply's does.
func (c *conn) startAsync(w *work) bool {
	if w.pipe != nil {
		return c.startSpliceWrite(w)
	}
	if c.async == nil || w.r.length == 0 || !c.async.MayAsync() {
		return false
	}
	r := w.r
	switch {
	case r.typ == cmdRead:
	case r.typ == cmdWrite && r.flags&cmdFlagFUA == 0:
	default:
		return false
	}
	if c.check(r) != 0 {
		return false // refused the usual way
	}
	large := r.typ == cmdRead && c.spliceable(int64(r.length))
	if large && c.mightSpliceAsync() && c.startSpliceRead(w) {
		return true
	}
	a := c.newAsyncReq(w, nil)
	c.begin(a)
	var ok bool
	if r.typ == cmdRead {
		a.buf = getBuf(int(r.length))
		ok = c.async.ReadAsync(c.ctx, *a.buf, int64(r.offset), a.doneFn)
		if !ok {
			putBuf(a.buf)
		}
	} else {
		ok = c.async.WriteAsync(c.ctx, w.payload, int64(r.offset), a.doneFn)
	}
	if !ok {
		c.undo(a)
		return false
	}
	if large {
		c.countLargeRead(int64(r.length))
	}
	return true
}

// begin counts a request about to be offered to the export's asynchronous
// path: before the offer, since its reply may be out before the offer
// returns. undo takes that back when the export refused it.
func (c *conn) begin(a *asyncReq) {
	c.asyncs.Add(1)
	c.srv.stats.AsyncRequests.Add(1)
	if a.w.pipe != nil {
		c.srv.stats.SplicedWrites.Add(1)
	}
	if a.pipe != nil {
		c.srv.stats.SplicedReads.Add(1)
	}
}

func (c *conn) undo(a *asyncReq) {
	c.srv.stats.AsyncRequests.Add(^uint64(0))
	if a.w.pipe != nil {
		c.srv.stats.SplicedWrites.Add(^uint64(0))
	}
	if a.pipe != nil {
		c.srv.stats.SplicedReads.Add(^uint64(0))
	}
	a.free()
	c.asyncs.Done()
}

// done completes an asynchronous request: it builds the reply and queues
// it for the writer without writing (queueNoWait). It runs on whatever
// goroutine the export completes on, a remote leg's reply reader that
// other devices share: a client that reads no replies must not hold that
// up. The payload's memory goes back here; the reply's (a read's data)
// once it is written.
func (a *asyncReq) done(err error) {
	c, r := a.c, a.w.r
	rep := getReply(a.w.charge)
	switch {
	case r.typ != cmdRead:
		c.simpleReply(rep, r.cookie, ErrorCode(err))
	case a.pipe != nil:
		if !a.splicedReply(rep, err) {
			putReply(rep)
			return // read again the ordinary way, which finishes it
		}
	case err != nil:
		putBuf(a.buf)
		c.errorReply(rep, r, ErrorCode(err))
	default:
		rep.pooled, rep.data = a.buf, *a.buf
		c.readReplyHead(rep, r)
	}
	if a.w.pipe != nil {
		c.srv.pipes.putAfter(a.w.pipe, err)
	}
	a.w.done()
	a.free()
	c.requestDone()
	c.queueNoWait(rep)
	c.asyncs.Done()
}

// mightSplice says whether a read of n bytes would be spliced now (see
// spliceRead).
func (c *conn) mightSplice(n int64) bool {
	return c.spliceable(n) && c.knobs.Load()&knobSplice != 0
}

// spliceable says whether a read of n bytes may be spliced, if the tuner
// finds that it pays; spliced, such reads are asynchronous where the
// export can (async_splice.go).
func (c *conn) spliceable(n int64) bool {
	return c.splicer != nil && n >= spliceMin && n <= pipeSize
}
