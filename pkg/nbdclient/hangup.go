package nbdclient

import (
	"crypto/tls"
	"time"
)

// The end of a connection at the client's wish: NBD_CMD_DISC, then TLS's
// close_notify, each bounded, then the kill.

// close sends NBD_CMD_DISC, bounded by a short deadline, and kills the
// connection: calls still in flight fail with ErrClosed.
func (c *conn) close() { c.hangUp(ErrClosed) }

// hangUp sends NBD_CMD_DISC and kills the connection for reason. A batch
// stuck in its write (a server that reads nothing) holds wmu: then the
// DISC is skipped, and the kill unblocks that write.
func (c *conn) hangUp(reason error) {
	if c.alive() && c.wmu.TryLock() {
		var h [requestSize]byte
		(&request{typ: cmdDisc}).encode(h[:])
		c.nc.SetWriteDeadline(time.Now().Add(hangUpWait))
		if _, err := c.nc.Write(h[:]); err == nil { // best effort: we hang up anyway
			c.closeNotify()
		}
		c.wmu.Unlock()
	}
	c.kill(reason)
}

// hangUpWait bounds each of hangUp's goodbyes: the DISC and close_notify.
const hangUpWait = time.Second

// closeNotify ends a TLS session politely after the DISC went out: the
// close_notify alert tells the server the session ended here, not by a
// truncation. crypto/tls gives the alert 5 s of its own; a server that
// stopped reading gets hangUpWait, then the transport is closed under it.
func (c *conn) closeNotify() {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return
	}
	stop := time.AfterFunc(hangUpWait, func() { c.transport.Close() })
	tc.CloseWrite()
	stop.Stop()
}
