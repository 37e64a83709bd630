package nbdclient

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// One request's round trip on a connection: a slot of the in-flight
// bound, the queue, the wait for the reply, and giving up on it safely.

// do sends one request (with payload for a write) and waits for its reply:
// a read's data goes into buf, or into pipe when pipe >= 0 (splice.go).
// deadline (zero: none) is the request timeout's end, which the watchdog
// enforces by killing the connection with ErrTimeout; ctx's end only
// abandons the call.
func (c *conn) do(ctx context.Context, deadline time.Time, req request, payload, buf []byte, pipe int) result {
	if pipe >= 0 {
		if c.raw == nil {
			return result{err: ErrNoSplice}
		}
		c.splicing.Add(1)
		defer c.splicing.Add(-1)
	}
	if err := c.acquire(ctx, deadline); err != nil {
		return result{err: err}
	}
	cl := newCall()
	cl.req, cl.payload, cl.buf, cl.pipe, cl.deadline = req, payload, buf, pipe, deadline
	lead, err := c.enqueue(cl)
	if err != nil {
		<-c.slots
		return result{err: err}
	}
	if lead {
		if ctx.Done() == nil {
			c.writeLoop(true)
		} else {
			go c.writeLoop(false) // a writer must not be stuck under a caller that may leave
		}
	}
	select {
	case <-cl.done: // the reader finished with buf before it sent the token
		res := cl.res
		if !c.alive() {
			c.quiesce(cl) // a kill may have failed it mid-write or mid-fill
			return res
		}
		if c.written.Load() >= cl.req.cookie { // else the writer may still look at it
			callPool.Put(cl)
		}
		return res
	case <-ctx.Done():
	}
	if !c.unqueue(cl) {
		c.letGo(cl)
	}
	return result{err: ctxErr(ctx)}
}

// acquire takes a slot for one request: at once when one is free, else
// waiting no longer than ctx and the deadline allow (only this slow path
// pays for a timer).
func (c *conn) acquire(ctx context.Context, deadline time.Time) error {
	if ctx.Err() != nil {
		return ctxErr(ctx)
	}
	select {
	case c.slots <- struct{}{}:
		return nil
	default:
	}
	ctx, cancel := timed(ctx, deadline)
	defer cancel()
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctxErr(ctx)
	case <-c.dead:
		return c.deadErr()
	}
}

// letGo gives up on a call that was taken by the writer, making sure
// that neither the writer nor the reader uses its buffers any more: a
// request being written breaks the stream (the connection is dropped,
// which ends the write); a read whose data is arriving is dropped
// likewise, since the server may stall there.
func (c *conn) letGo(cl *call) {
	if c.written.Load() < cl.req.cookie {
		c.kill(errAbandonedSend) // a no-op when already dead
		c.wmu.Lock()             // held by a writer for as long as it writes a batch
		c.wmu.Unlock()
	}
	if !cl.bufMu.TryLock() {
		c.kill(errAbandoned)
		cl.bufMu.Lock()
	}
	cl.abandoned = true
	cl.bufMu.Unlock()
}

// quiesce waits, on a dead connection, until the writer is done with its
// batch and the reader with cl's buffer, and marks cl abandoned so that
// the reader never touches its buffer again.
func (c *conn) quiesce(cl *call) {
	c.wmu.Lock() // held by a writer for as long as it writes a batch
	c.wmu.Unlock()
	cl.bufMu.Lock()
	cl.abandoned = true
	cl.bufMu.Unlock()
}

func ctxErr(ctx context.Context) error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, ErrTimeout):
		return ErrTimeout
	case errors.Is(cause, ErrClosed):
		return ErrClosed
	}
	return fmt.Errorf("nbdclient: %w", ctx.Err())
}

// timed bounds ctx by a request's deadline, with ErrTimeout as the cause.
// Only slow paths (a wait for a slot, a redial) use it.
func timed(ctx context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	if deadline.IsZero() {
		return ctx, func() {}
	}
	return context.WithDeadlineCause(ctx, deadline, ErrTimeout)
}
