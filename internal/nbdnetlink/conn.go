package nbdnetlink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Errors a caller tells apart: the kernel has no nbd driver (module not
// loaded), or the caller may not configure it (CAP_SYS_ADMIN).
var (
	ErrNoDriver   = errors.New("the kernel has no NBD driver (load it: modprobe nbd)")
	ErrPermission = errors.New("configuring the kernel's NBD devices needs root (CAP_SYS_ADMIN)")
	ErrIndex      = errors.New("an NBD device index is 0 to 2147483647")
)

// Conn is a generic-netlink socket resolved to the "nbd" family. Its
// requests are serialized: each waits for its own reply and ack.
type Conn struct {
	mu     sync.Mutex
	fd     int
	family uint16
	seq    uint32
}

// Open opens the socket and resolves the family. A kernel without the nbd
// driver answers ErrNoDriver.
func Open() (*Conn, error) { return openFamily("nbd") }

func openFamily(name string) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return nil, fmt.Errorf("nbdnetlink: socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("nbdnetlink: bind: %w", err)
	}
	// Replies are bounded by the kernel's own sizes; a timeout keeps a
	// lost reply from hanging a verb forever.
	tv := unix.Timeval{Sec: 30}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("nbdnetlink: %w", err)
	}
	c := &Conn{fd: fd}
	reply, err := c.request(ctrlID, ctrlCmdGetFamily, ctrlVersion, attrs(nil).str(ctrlAttrFamilyName, name))
	if errors.Is(err, unix.ENOENT) {
		err = ErrNoDriver
	}
	if err == nil {
		err = c.setFamily(reply)
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

func (c *Conn) setFamily(reply map[uint16][]byte) error {
	id := reply[ctrlAttrFamilyID]
	if len(id) != 2 {
		return fmt.Errorf("nbdnetlink: no family id in the controller's reply")
	}
	c.family = binary.NativeEndian.Uint16(id)
	return nil
}

// Close closes the socket.
func (c *Conn) Close() error { return unix.Close(c.fd) }

// request sends one command with an ack asked for and returns the
// attributes of its reply message (nil for a command answered only by the
// ack). A negative ack is the errno it carries.
func (c *Conn) request(family uint16, cmd, version uint8, a attrs) (map[uint16][]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	msg := message(family, unix.NLM_F_REQUEST|unix.NLM_F_ACK, c.seq, cmd, version, a)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("nbdnetlink: send: %w", err)
	}
	var reply map[uint16][]byte
	buf := make([]byte, 64<<10)
	for range 64 { // a reply and an ack; more is a confused kernel
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("nbdnetlink: receive: %w", err)
		}
		done, err := c.absorb(buf[:n], &reply)
		if done || err != nil {
			return reply, err
		}
	}
	return nil, errors.New("nbdnetlink: no ack from the kernel")
}

// absorb reads the messages of one datagram: a reply's attributes go to
// *reply, and an ack of our sequence number ends the request.
func (c *Conn) absorb(b []byte, reply *map[uint16][]byte) (done bool, err error) {
	for len(b) >= nlmsgHdrLen {
		n := int(binary.NativeEndian.Uint32(b))
		if n < nlmsgHdrLen || n > len(b) {
			return false, errShort
		}
		typ, seq := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint32(b[8:])
		body := b[nlmsgHdrLen:n]
		b = b[min(pad(n), len(b)):]
		if seq != c.seq {
			continue // a stale answer to a request that gave up
		}
		switch typ {
		case unix.NLMSG_ERROR:
			if len(body) < 4 {
				return false, errShort
			}
			if e := int32(binary.NativeEndian.Uint32(body)); e != 0 {
				return true, unix.Errno(-e)
			}
			return true, nil
		case unix.NLMSG_DONE, unix.NLMSG_NOOP:
		default:
			if len(body) < genlHdrLen {
				return false, errShort
			}
			// A copy: the caller's buffer takes the next datagram (the ack).
			a, err := parseAttrs(bytes.Clone(body[genlHdrLen:]))
			if err != nil {
				return false, err
			}
			*reply = a
		}
	}
	return false, nil
}
