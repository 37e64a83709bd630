package nbdclient

import "time"

// The request timeout, per connection: one timer looks at the calls in
// flight when the earliest of their deadlines may have come, instead of a
// timer (and a context) per request. A call past its deadline kills the
// connection with ErrTimeout, which fails every call on it: a server that
// stopped answering one request is not trusted with the others. A write
// stuck on a server that reads nothing ends the same way, as the kill
// closes the socket.

// armLocked makes the watchdog look no later than at d. Deadlines mostly
// come in order, so the timer is touched only when it is not armed, or
// for an earlier deadline (a retried call keeps its first deadline).
// Called with c.mu held.
func (c *conn) armLocked(d time.Time) {
	if c.wdArmed && !d.Before(c.wdAt) {
		return
	}
	c.wdAt, c.wdArmed = d, true
	if c.wd == nil {
		c.wd = time.AfterFunc(time.Until(d), c.watch)
		return
	}
	c.wd.Reset(time.Until(d))
}

// watch kills the connection if a call is past its deadline, and else
// arms itself for the earliest one left.
func (c *conn) watch() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.wdArmed = false
	now := time.Now()
	var next time.Time
	for _, cl := range c.pending {
		switch {
		case cl.deadline.IsZero():
		case !cl.deadline.After(now):
			c.mu.Unlock()
			c.kill(ErrTimeout)
			return
		case next.IsZero() || cl.deadline.Before(next):
			next = cl.deadline
		}
	}
	if !next.IsZero() {
		c.armLocked(next)
	}
	c.mu.Unlock()
}
