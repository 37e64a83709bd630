package nbdserver

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// client is a minimal NBD client for the tests, speaking raw wire bytes.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, sock string) *client {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *client) read(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		c.t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func (c *client) write(b []byte) {
	c.t.Helper()
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// hello reads the server greeting and sends client flags.
func (c *client) hello(flags uint32) uint16 {
	c.t.Helper()
	h := c.read(18)
	if binary.BigEndian.Uint64(h) != magicNBD || binary.BigEndian.Uint64(h[8:]) != magicOption {
		c.t.Fatalf("bad greeting % x", h)
	}
	c.write(binary.BigEndian.AppendUint32(nil, flags))
	return binary.BigEndian.Uint16(h[16:])
}

func (c *client) opt(typ uint32, data []byte) {
	c.t.Helper()
	b := binary.BigEndian.AppendUint64(nil, magicOption)
	b = binary.BigEndian.AppendUint32(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	c.write(append(b, data...))
}

func (c *client) optReply(wantOpt uint32) (typ uint32, data []byte) {
	c.t.Helper()
	h := c.read(20)
	if binary.BigEndian.Uint64(h) != magicOptReply {
		c.t.Fatalf("bad option reply magic % x", h)
	}
	if o := binary.BigEndian.Uint32(h[8:]); o != wantOpt {
		c.t.Fatalf("reply to option %d, want %d", o, wantOpt)
	}
	return binary.BigEndian.Uint32(h[12:]), c.read(int(binary.BigEndian.Uint32(h[16:])))
}

func infoData(name string, reqs ...uint16) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(reqs)))
	for _, r := range reqs {
		b = binary.BigEndian.AppendUint16(b, r)
	}
	return b
}

func metaData(name string, queries ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(queries)))
	for _, q := range queries {
		b = binary.BigEndian.AppendUint32(b, uint32(len(q)))
		b = append(b, q...)
	}
	return b
}

// goExport negotiates GO and returns the size and transmission flags.
func (c *client) goExport(name string) (int64, uint16) {
	c.t.Helper()
	c.opt(optGo, infoData(name))
	var size int64
	var flags uint16
	for {
		typ, d := c.optReply(optGo)
		switch typ {
		case repInfo:
			if binary.BigEndian.Uint16(d) == infoExport {
				size = int64(binary.BigEndian.Uint64(d[2:]))
				flags = binary.BigEndian.Uint16(d[10:])
			}
		case repAck:
			return size, flags
		default:
			c.t.Fatalf("GO %q: reply type %#x %q", name, typ, d)
		}
	}
}

// connect does the usual client's handshake: structured replies,
// base:allocation, GO.
func (c *client) connect(name string, structured bool) (int64, uint16) {
	c.t.Helper()
	c.hello(clientFixedNewstyle | clientNoZeroes)
	if structured {
		c.opt(optStructuredReply, nil)
		if typ, _ := c.optReply(optStructuredReply); typ != repAck {
			c.t.Fatalf("STRUCTURED_REPLY: %#x", typ)
		}
		c.opt(optSetMetaContext, metaData(name, metaBaseAllocation))
		if typ, d := c.optReply(optSetMetaContext); typ != repMetaContext || binary.BigEndian.Uint32(d) != metaAllocationID {
			c.t.Fatalf("SET_META_CONTEXT: %#x %q", typ, d)
		}
		if typ, _ := c.optReply(optSetMetaContext); typ != repAck {
			c.t.Fatalf("SET_META_CONTEXT ack: %#x", typ)
		}
	}
	return c.goExport(name)
}

func (c *client) request(typ, flags uint16, cookie, off uint64, length uint32, payload []byte) {
	c.t.Helper()
	c.write(requestBytes(nil, typ, flags, cookie, off, length, payload))
}

// requestBytes appends one request to b, so that several can be sent with
// one write (and so arrive in one read of the server's).
func requestBytes(b []byte, typ, flags uint16, cookie, off uint64, length uint32, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, magicRequest)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, cookie)
	b = binary.BigEndian.AppendUint64(b, off)
	b = binary.BigEndian.AppendUint32(b, length)
	return append(b, payload...)
}

// simple reads a simple reply header.
func (c *client) simple() (errno uint32, cookie uint64) {
	c.t.Helper()
	h := c.read(16)
	if m := binary.BigEndian.Uint32(h); m != magicSimple {
		c.t.Fatalf("reply magic %#x, want simple", m)
	}
	return binary.BigEndian.Uint32(h[4:]), binary.BigEndian.Uint64(h[8:])
}

// chunk reads one structured reply chunk.
type chunk struct {
	flags, typ uint16
	cookie     uint64
	payload    []byte
}

func (c *client) chunk() chunk {
	c.t.Helper()
	h := c.read(20)
	if m := binary.BigEndian.Uint32(h); m != magicChunk {
		c.t.Fatalf("reply magic %#x, want a structured chunk", m)
	}
	return chunk{flags: binary.BigEndian.Uint16(h[4:]), typ: binary.BigEndian.Uint16(h[6:]),
		cookie: binary.BigEndian.Uint64(h[8:]), payload: c.read(int(binary.BigEndian.Uint32(h[16:])))}
}

// expectClosed checks the server closed the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.br.ReadByte(); err == nil || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
		c.t.Fatalf("connection still open (read err %v)", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
