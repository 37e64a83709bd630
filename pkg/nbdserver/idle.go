package nbdserver

import (
	"errors"
	"os"
	"time"
)

// The idle timeout: a connection that has nothing in flight and sends no
// request for IdleTimeout is closed. Its clock starts when the last request
// in flight is done, which is not always before the reader waits again: a
// reader that hands its batch to a worker (a slow backend, or the tuner's
// choice) is back waiting while that batch is still served. Whoever brings
// the count in flight to zero then arms the reader's deadline.

// awaitRequest waits until the next request's header is buffered or
// reading fails, the failure left pending for readOne. It reports whether
// the wait ended because the connection was idle for IdleTimeout. Called
// with rmu held, when IdleTimeout is set.
func (c *conn) awaitRequest() (idle bool) {
	c.idleMu.Lock()
	c.idleWaiting = true
	c.idleArmed = c.inflight.Load() == 0
	if c.idleArmed {
		c.setReadDeadline(time.Now().Add(c.srv.IdleTimeout))
	}
	c.idleMu.Unlock()

	got := c.br.fillTo(requestHeaderSize)

	c.idleMu.Lock()
	c.idleWaiting = false
	armed := c.idleArmed
	if armed {
		c.setReadDeadline(time.Time{})
	}
	c.idleMu.Unlock()
	return armed && !got && errors.Is(c.br.err, os.ErrDeadlineExceeded) && !c.stopped.Load()
}

// requestDone takes a served request out of the count in flight; the last
// one arms the idle deadline of a reader already waiting (awaitRequest).
func (c *conn) requestDone() {
	if c.inflight.Add(-1) != 0 || c.srv.IdleTimeout <= 0 {
		return
	}
	c.idleMu.Lock()
	if c.idleWaiting && !c.idleArmed {
		c.idleArmed = true
		c.setReadDeadline(time.Now().Add(c.srv.IdleTimeout))
	}
	c.idleMu.Unlock()
}
