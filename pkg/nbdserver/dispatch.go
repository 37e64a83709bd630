package nbdserver

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Dispatch: one request is checked, then served by its command's handler.

// handle does one request and returns its reply. A panic is an EIO reply.
func (c *conn) handle(w *work) (rep *reply) {
	defer c.requestDone()
	r := w.r
	rep = getReply(w.charge)
	defer func() {
		if p := recover(); p != nil {
			c.srv.stats.Panics.Add(1)
			c.log.Error("panic serving a request", "panic", p, "cmd", r.typ, "stack", string(debug.Stack()))
			if rep.pooled != nil {
				putBuf(rep.pooled)
			}
			if rep.pipe != nil {
				c.srv.pipes.discard(rep.pipe) // it may hold data: never sent after this header
			}
			rep.pooled, rep.data, rep.pipe, rep.pipeLen = nil, nil, nil, 0
			c.refuse(rep, r, errIO) // in the form this command's errors take
		}
		if w.pipe != nil {
			c.srv.pipes.discard(w.pipe) // a write's payload, perhaps in part
			w.pipe = nil
		}
		w.done()
	}()
	if w.pipe != nil && c.writeFromPipe(w, rep) {
		return rep
	}
	c.do(r, w.payload, rep)
	return rep
}

// do serves one request and fills in its reply: first check, which
// refuses what may not be served (see cmdRules), then the command's
// handler, which can assume a valid request.
func (c *conn) do(r request, payload []byte, rep *reply) {
	if errno := c.check(r); errno != 0 {
		c.refuse(rep, r, errno)
		return
	}
	switch r.typ {
	case cmdRead:
		c.serveRead(r, rep)
	case cmdWrite:
		c.serveWrite(r, payload, rep)
	case cmdFlush:
		c.serveFlush(r, rep)
	case cmdTrim:
		c.serveTrim(r, rep)
	case cmdWriteZeroes:
		c.serveWriteZeroes(r, rep)
	case cmdCache:
		c.serveCache(r, rep)
	case cmdBlockStatus:
		c.serveBlockStatus(r, rep)
	default:
		// check passed a command that has no handler: a bug in gdm, not
		// the client's. handle answers the panic with EIO and logs it.
		panic(fmt.Sprintf("nbdserver: command %d passed check but has no handler", r.typ))
	}
}

// spliceRead puts a large read's data in a pipe for the writer to splice
// into the socket (see SpliceReader). It reports false, having done
// nothing the client can see, when the read is to be done with ReadAt.
func (c *conn) spliceRead(rep *reply, off, n int64) (bool, error) {
	if !c.mightSplice(n) {
		return false, nil
	}
	p := c.srv.pipes.getFor(n)
	if p == nil {
		return false, nil
	}
	if err := c.splicer.SpliceRead(c.ctx, p.w, off, n); err != nil {
		if errors.Is(err, ErrNoSplice) {
			c.srv.pipes.putIfEmpty(p) // it may hold part of the range
			return false, nil
		}
		c.srv.pipes.discard(p)
		return false, err
	}
	rep.pipe, rep.pipeLen = p, int(n)
	return true, nil
}
