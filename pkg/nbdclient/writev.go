package nbdclient

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The writer's writev on a descriptor: what net.Buffers.WriteTo does for
// a socket, written out so that the writer can say when it waits for
// room in the socket (parked). While it does not, it needs nothing from
// the server to finish its batch, and a reader that got a reply before
// the writer was done with the request may wait for it (awaitWritten);
// while it does, the server may be waiting for the reader.

// iovMax is the most segments one writev(2) takes (Linux's UIO_MAXIOV).
const iovMax = 1024

// writev writes c.iovOut with writev(2), consuming it, waiting for room
// in the socket between calls as a net.Conn's Write does. Called by the
// writer, with wmu held.
func (c *conn) writev() error {
	c.werr = nil
	c.iovOut = advance(c.iovOut, 0)
	err := c.raw.Write(c.step) // a method value made once (newConn): no allocation
	clear(c.vec)               // no pointers to callers' payloads kept
	if err != nil {
		return err
	}
	return c.werr
}

// writevStep is writev's callback: it writes until done (true), or
// until the socket is full (false: the poller calls it again once there
// is room), saying so in c.parked.
func (c *conn) writevStep(fd uintptr) bool {
	c.parked.Store(false)
	for len(c.iovOut) > 0 {
		vec := c.vec[:0]
		for _, b := range c.iovOut[:min(len(c.iovOut), iovMax)] {
			if len(b) > 0 {
				v := unix.Iovec{Base: &b[0]}
				v.SetLen(len(b))
				vec = append(vec, v)
			}
		}
		c.vec = vec
		n, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(unsafe.SliceData(vec))), uintptr(len(vec)))
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			c.park()
			return false
		default:
			c.werr = e
			return true
		}
		c.iovOut = advance(c.iovOut, int(n))
	}
	return true
}

// advance drops n written bytes from the front of iov, and any empty
// segments there.
func advance(iov [][]byte, n int) [][]byte {
	for len(iov) > 0 && n >= len(iov[0]) {
		n -= len(iov[0])
		iov = iov[1:]
	}
	if n > 0 {
		iov[0] = iov[0][n:]
	}
	return iov
}

// park says that the writer waits for room in the socket.
func (c *conn) park() {
	c.parked.Store(true)
	c.signal()
}

// signal wakes a reader waiting in awaitWritten, if any, to look again
// at written and parked; the token waits for it otherwise.
func (c *conn) signal() {
	select {
	case c.progress <- struct{}{}:
	default:
	}
}
