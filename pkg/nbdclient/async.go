package nbdclient

import (
	"context"
	"errors"
	"fmt"
)

// Asynchronous calls: a server that serves a table over a remote device
// (gdm's front end) starts a request here and goes on reading its own
// client's requests; the connection's reader calls the request's done
// when the reply is in, and the server queues its reply from there. No
// goroutine waits for the reply, so none has to be woken for it.
//
// Only the fast case is taken: a live connection with a free slot, a
// range of one request. Everything that waits (a redial, a full
// connection) is refused at once, and the caller does the request the
// synchronous way (ReadAt, WriteAt), which waits. Once started, a request
// has every fault behaviour of a synchronous one:
//   - the request timeout: the watchdog kills the connection, and done
//     gets ErrTimeout;
//   - a dropped connection (or a server answering ESHUTDOWN, which is hung
//     up on): the request is sent once more, on a goroutine of its own
//     since that may redial, as the synchronous path retries (see do);
//   - Close: done gets ErrClosed;
//   - TLS: the same, the reader does not care how the bytes arrived.
// ctx is looked at when the request starts and before its retry: like a
// synchronous request that its caller may not abandon (targets pass
// context.Background), a started request is bounded by the timeout, not
// by ctx.
//
// done is called exactly once, on the connection's reader goroutine, or
// on the goroutine that failed or retried the request, or (a write
// answered while the writer waited to send the rest of it: early.go) on
// a goroutine of its own. It must not block:
// the reader it runs on serves every other request of the connection,
// whoever made them.

// ReadAsync starts reading len(p) bytes at off into p, and reports true;
// done then gets the result, and p is not touched after done is called.
// It reports false, having sent nothing and never to call done, when the
// read cannot start at once (see above).
func (cl *Client) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	if int64(len(p)) > cl.maxRequest() {
		return false // more than one request: ReadAt splits it
	}
	req := request{typ: cmdRead, flags: cl.readFlags(int64(len(p))), offset: uint64(off), length: uint32(len(p))}
	return cl.startAsync(ctx, req, nil, p, -1, -1, done)
}

// WriteAsync starts writing p at off (no FUA: a FUA write takes WriteAt),
// as ReadAsync starts a read; p is not read after done is called.
func (cl *Client) WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	if cl.writable() != nil || int64(len(p)) > cl.maxRequest() {
		return false // WriteAt says why, or splits it
	}
	return cl.startAsync(ctx, request{typ: cmdWrite, offset: uint64(off), length: uint32(len(p))}, p, nil, -1, -1, done)
}

// startAsync queues req on a live connection with a free slot, and starts
// a writer if none runs. src >= 0 is a spliced write's pipe, dst >= 0 a
// spliced read's (splice.go), which only a connection with a descriptor
// (not TLS) takes.
func (cl *Client) startAsync(ctx context.Context, req request, payload, buf []byte, src, dst int, done func(error)) bool {
	n := int64(req.length)
	if ctx.Err() != nil || n == 0 || cl.check(int64(req.offset), n) != nil {
		return false
	}
	c := cl.pickLive()
	if c == nil {
		return false
	}
	if (src >= 0 || dst >= 0) && c.raw == nil {
		return false
	}
	select {
	case c.slots <- struct{}{}:
	default:
		return false
	}
	call := newCall()
	call.req, call.payload, call.buf, call.pipe, call.deadline = req, payload, buf, dst, cl.deadline()
	call.spliced, call.src = src >= 0, src
	call.async, call.client, call.ctx = done, cl, ctx
	if dst >= 0 {
		c.splicing.Add(1) // before the reader can see the reply (see readHead)
	}
	lead, err := c.enqueue(call)
	if err != nil {
		c.endSplice(call)
		<-c.slots
		return false
	}
	if lead {
		c.writeOnCaller()
	}
	return true
}

// pickLive returns a live connection of the pool, round robin, or nil
// when none is (a redial, which waits, is the synchronous path's).
func (cl *Client) pickLive() *conn {
	n := uint32(len(cl.conns))
	start := cl.next.Add(1) % n
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return nil
	}
	for i := range n {
		if c := cl.conns[(start+i)%n]; c != nil && c.alive() {
			cl.mu.Unlock()
			if i > 0 {
				cl.refill(int(start))
			}
			return c
		}
	}
	cl.mu.Unlock()
	return nil
}

// completeAsync finishes an asynchronous call whose reply is in, on the
// reader (onReader), or on a goroutine of the writer's (completeLate),
// where no burst is held. A server shutting down is hung up on and the
// request retried, off the reader: the hang-up writes a DISC, which may
// wait.
func (c *conn) completeAsync(cl *call, res result, onReader bool) {
	c.endSplice(cl)
	if overflowed(cl.req, res.err) { // refused unfragmented: see overflow.go
		cl.client.noteOverflow(int64(cl.req.length))
		if cl.pipe < 0 {
			go cl.client.readWithoutDF(cl)
			return
		}
		res.err = fmt.Errorf("%w: %w", ErrNoSplice, res.err)
	}
	if shuttingDown(res.err) {
		go func() {
			cl.res.err = cl.client.leaveShuttingDown(res.err)
			cl.client.retryAsync(cl)
		}()
		return
	}
	done := cl.async
	if onReader {
		c.hold(cl.ctx)
	}
	if c.written.Load() >= cl.req.cookie { // else the writer may still look at it
		callPool.Put(cl)
	}
	done(res.err)
}

// failAsync finishes the asynchronous calls a kill failed, on a goroutine
// of its own: first it waits until the writer and the reader are done
// with each call's buffers (kill may have come from either, mid-way), as a
// synchronous waiter does (quiesce), then fails each call, or retries it
// on a goroutine of its own (the retry waits for its reply, and the calls
// of a connection are retried together, as their synchronous callers'
// are).
func (c *conn) failAsync(calls []*call) {
	for _, cl := range calls {
		c.quiesce(cl)
		c.endSplice(cl)
	}
	for _, cl := range calls {
		switch {
		case cl.pipe >= 0:
			cl.client.retryAsync(cl) // a spliced read is not sent again: see there
		case retriable(cl.ctx, cl.deadline, cl.res.err):
			go cl.client.retryAsync(cl)
		default:
			cl.async(cl.res.err)
		}
	}
}

// retryAsync sends a failed asynchronous call once more where the
// synchronous path would (see retriable), waiting for its reply on this
// goroutine, which is not a reader's; then it calls done.
func (cl *Client) retryAsync(call *call) {
	err := call.res.err
	if call.pipe >= 0 {
		// The pipe may hold part of the data: its owner reads the range
		// the ordinary way, which retries, as after SpliceRead.
		if errors.Is(err, ErrDisconnected) {
			err = fmt.Errorf("%w: %w", ErrNoSplice, err)
		}
		call.async(err)
		return
	}
	if retriable(call.ctx, call.deadline, err) {
		payload, ok := call.payload, true
		if call.spliced {
			payload, ok = unsentPayload(call)
		}
		if ok {
			cl.retries.Add(1)
			req := call.req
			req.cookie = 0
			err = cl.attempt(call.ctx, call.deadline, req, payload, call.buf, -1).err
		}
	}
	call.async(err)
}

// endSplice counts a spliced read (an asynchronous one: startAsync's dst)
// out of splicing once the reader is done with its pipe.
func (c *conn) endSplice(cl *call) {
	if cl.async != nil && cl.pipe >= 0 {
		c.splicing.Add(-1)
	}
}
