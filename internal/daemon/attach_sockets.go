package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The daemon attaches a device by making socket pairs: it serves one end
// of each with its own NBD server, like any client's connection, and does
// the client's handshake on the other end itself before the kernel gets
// that end. The server's code path (handshake, limits, flags, accounting,
// remove --force) is then the same as for nbd-client's connections, and no
// listener is opened for it: nothing but the kernel can reach these
// sockets.

// pairListener hands the server ends of socket pairs to the NBD server's
// Serve loop, as connections it accepted.
type pairListener struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newPairListener() *pairListener {
	return &pairListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

var errPairsClosed = errors.New("the NBD server is shut down")

func (l *pairListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close is called by the server's Shutdown and Close.
func (l *pairListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *pairListener) Addr() net.Addr { return &net.UnixAddr{Name: "gdm-attach", Net: "unix"} }

// hand gives the server one connection, or fails once it is shut down.
func (l *pairListener) hand(c net.Conn) error {
	select {
	case l.conns <- c:
		return nil
	case <-l.done:
		c.Close()
		return errPairsClosed
	}
}

// pairBuffer is the server end's send buffer: the kernel's reads of up to
// its max_sectors come back in one go rather than in turns.
const pairBuffer = 4 << 20

// handshakeWait bounds the daemon's handshake with its own server.
const handshakeWait = 10 * time.Second

// kernelEnd is the client end of a pair, past the handshake.
type kernelEnd struct {
	f     *os.File
	size  uint64
	flags uint16
	// served is closed when the server has closed its end, which it does
	// after giving the device back: a detach waits for it, so that a
	// remove right after finds no connection open.
	served chan struct{}
}

// pairConn is a server end that reports its close.
type pairConn struct {
	*net.UnixConn
	once   sync.Once
	closed chan struct{}
}

func (c *pairConn) Close() error {
	err := c.UnixConn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}

// RemoteAddr names the peer for the server's logs and per-client limits:
// an unnamed socket pair has no address of its own.
func (c *pairConn) RemoteAddr() net.Addr { return &net.UnixAddr{Name: "gdm-attach", Net: "unix"} }

// dial makes a socket pair, hands the server end to l, and does the
// handshake (fixed newstyle, EXPORT_NAME) for export on the other end.
func (l *pairListener) dial(export string) (*kernelEnd, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	srvFile := os.NewFile(uintptr(fds[0]), "gdm-attach-server")
	nc, err := net.FileConn(srvFile)
	srvFile.Close() // FileConn holds its own descriptor
	if err != nil {
		unix.Close(fds[1])
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	uc := nc.(*net.UnixConn)
	uc.SetWriteBuffer(pairBuffer)
	sc := &pairConn{UnixConn: uc, closed: make(chan struct{})}
	k := &kernelEnd{f: os.NewFile(uintptr(fds[1]), "gdm-attach-kernel"), served: sc.closed}
	if err := l.hand(sc); err != nil {
		k.f.Close()
		return nil, err
	}
	if err := k.handshake(export); err != nil {
		k.f.Close()
		return nil, fmt.Errorf("handshake with the daemon's own NBD server: %w", err)
	}
	return k, nil
}

// NBD handshake constants (the protocol's, as a client uses them).
const (
	hsMagic          = 0x4e42444d41474943 // "NBDMAGIC"
	hsOptMagic       = 0x49484156454f5054 // "IHAVEOPT"
	hsFixedNewstyle  = 1 << 0
	hsNoZeroes       = 1 << 1
	hsOptExportName  = 1
	hsTransmitFlagRO = 1 << 1
)

func (k *kernelEnd) handshake(export string) error {
	k.f.SetDeadline(time.Now().Add(handshakeWait))
	defer k.f.SetDeadline(time.Time{})
	var hello [18]byte
	if _, err := io.ReadFull(k.f, hello[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint64(hello[:]) != hsMagic || binary.BigEndian.Uint64(hello[8:]) != hsOptMagic {
		return errors.New("not an NBD newstyle server")
	}
	if binary.BigEndian.Uint16(hello[16:])&(hsFixedNewstyle|hsNoZeroes) != hsFixedNewstyle|hsNoZeroes {
		return errors.New("server lacks fixed newstyle or no-zeroes")
	}
	req := binary.BigEndian.AppendUint32(nil, hsFixedNewstyle|hsNoZeroes)
	req = binary.BigEndian.AppendUint64(req, hsOptMagic)
	req = binary.BigEndian.AppendUint32(req, hsOptExportName)
	req = binary.BigEndian.AppendUint32(req, uint32(len(export)))
	req = append(req, export...)
	if _, err := k.f.Write(req); err != nil {
		return err
	}
	var ack [10]byte
	if _, err := io.ReadFull(k.f, ack[:]); err != nil {
		return fmt.Errorf("export %q refused: %w", export, err)
	}
	k.size, k.flags = binary.BigEndian.Uint64(ack[:]), binary.BigEndian.Uint16(ack[8:])
	return nil
}

// fd is the descriptor to give the kernel, in blocking mode (the kernel's
// socket calls wait; os.File.Fd sets that).
func (k *kernelEnd) fd() int { return int(k.f.Fd()) }

// closeEnds closes the daemon's copies of the kernel ends: after CONNECT
// or RECONFIGURE the kernel holds its own, and on failure this ends the
// server's side of each pair too.
func closeEnds(ends []*kernelEnd) {
	for _, k := range ends {
		k.f.Close()
	}
}

// dialN makes n pairs for export; on any failure none is left open.
func (l *pairListener) dialN(export string, n int) ([]*kernelEnd, error) {
	var ends []*kernelEnd
	for range n {
		k, err := l.dial(export)
		if err != nil {
			closeEnds(ends)
			return nil, err
		}
		ends = append(ends, k)
	}
	return ends, nil
}
