package daemon

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// nbdConn is a bare NBD client for the daemon tests: fixed newstyle, GO,
// simple replies, one request at a time.
type nbdConn struct {
	c    net.Conn
	size int64
}

func dialNBD(t *testing.T, socket, name string) *nbdConn {
	t.Helper()
	return dialNBDTLS(t, socket, name, nil)
}

// dialNBDTLS is dialNBD with STARTTLS first when cfg is set.
func dialNBDTLS(t *testing.T, socket, name string, cfg *tls.Config) *nbdConn {
	t.Helper()
	n, err := openNBD(socket, name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.c.Close() })
	return n
}

// openNBD connects and negotiates GO of name, after STARTTLS when cfg is
// set.
func openNBD(socket, name string, cfg *tls.Config) (*nbdConn, error) {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	n, err := negotiate(c, name, cfg)
	if err != nil {
		c.Close()
	}
	return n, err
}

func negotiate(c net.Conn, name string, cfg *tls.Config) (*nbdConn, error) {
	hello := make([]byte, 18)
	if _, err := io.ReadFull(c, hello); err != nil {
		return nil, err
	}
	c.Write(binary.BigEndian.AppendUint32(nil, 3)) // fixed newstyle, no zeroes
	if cfg != nil {
		c.Write(nbdOption(5, nil)) // STARTTLS
		h := make([]byte, 20)
		if _, err := io.ReadFull(c, h); err != nil || binary.BigEndian.Uint32(h[12:]) != 1 {
			return nil, fmt.Errorf("STARTTLS: % x %v", h, err)
		}
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		c = tc
	}
	n := &nbdConn{c: c}
	data := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	data = append(data, name...)
	data = binary.BigEndian.AppendUint16(data, 0)
	c.Write(nbdOption(7, data)) // GO
	for {
		h := make([]byte, 20)
		if _, err := io.ReadFull(c, h); err != nil {
			return nil, fmt.Errorf("GO %s: %w", name, err)
		}
		typ, l := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:])
		d := make([]byte, l)
		io.ReadFull(c, d)
		switch {
		case typ == 1: // ACK
			return n, nil
		case typ == 3 && binary.BigEndian.Uint16(d) == 0:
			n.size = int64(binary.BigEndian.Uint64(d[2:]))
		case typ&(1<<31) != 0:
			return nil, fmt.Errorf("GO %s: error %#x %s", name, typ, d[4:])
		}
	}
}

// nbdOption is an option's bytes.
func nbdOption(typ uint32, data []byte) []byte {
	out := binary.BigEndian.AppendUint64(nil, 0x49484156454F5054)
	out = binary.BigEndian.AppendUint32(out, typ)
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	return append(out, data...)
}

// do sends one request and returns its errno (and data for reads).
func (n *nbdConn) do(typ uint16, off uint64, length uint32, payload []byte) (uint32, []byte, error) {
	b := binary.BigEndian.AppendUint32(nil, 0x25609513)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, 1)
	b = binary.BigEndian.AppendUint64(b, off)
	b = binary.BigEndian.AppendUint32(b, length)
	if _, err := n.c.Write(append(b, payload...)); err != nil {
		return 0, nil, err
	}
	h := make([]byte, 16)
	if _, err := io.ReadFull(n.c, h); err != nil {
		return 0, nil, err
	}
	if binary.BigEndian.Uint32(h) != 0x67446698 {
		return 0, nil, fmt.Errorf("bad reply magic % x", h)
	}
	errno := binary.BigEndian.Uint32(h[4:])
	if errno != 0 || typ != 0 {
		return errno, nil, nil
	}
	data := make([]byte, length)
	_, err := io.ReadFull(n.c, data)
	return 0, data, err
}

func (n *nbdConn) disconnect() {
	b := binary.BigEndian.AppendUint32(nil, 0x25609513)
	b = append(b, 0, 0, 0, 2)
	b = append(b, make([]byte, 20)...)
	n.c.Write(b)
	io.Copy(io.Discard, n.c) // until the server closes
	n.c.Close()
}
