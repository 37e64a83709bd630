package daemon

import (
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
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	n := &nbdConn{c: c}
	hello := make([]byte, 18)
	if _, err := io.ReadFull(c, hello); err != nil {
		t.Fatal(err)
	}
	out := binary.BigEndian.AppendUint32(nil, 3) // fixed newstyle, no zeroes
	out = binary.BigEndian.AppendUint64(out, 0x49484156454F5054)
	out = binary.BigEndian.AppendUint32(out, 7) // GO
	data := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	data = append(data, name...)
	data = binary.BigEndian.AppendUint16(data, 0)
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	c.Write(append(out, data...))
	for {
		h := make([]byte, 20)
		if _, err := io.ReadFull(c, h); err != nil {
			t.Fatalf("GO %s: %v", name, err)
		}
		typ, l := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:])
		d := make([]byte, l)
		io.ReadFull(c, d)
		switch {
		case typ == 1: // ACK
			return n
		case typ == 3 && binary.BigEndian.Uint16(d) == 0:
			n.size = int64(binary.BigEndian.Uint64(d[2:]))
		case typ&(1<<31) != 0:
			t.Fatalf("GO %s: error %#x %s", name, typ, d[4:])
		}
	}
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
