package nbdserver

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// Plain (non-fixed) newstyle, proto.md "Newstyle negotiation": a client that
// leaves NBD_FLAG_C_FIXED_NEWSTYLE clear ends the handshake with EXPORT_NAME
// and is answered size, transmission flags and, unless it set
// NBD_FLAG_C_NO_ZEROES, 124 zero bytes.
func TestPlainNewstyleExportName(t *testing.T) {
	m := newMem(8192)
	_, sock := startServer(t, testExports{"a": m}, nil)
	const rw = tfHasFlags | tfSendFlush | tfCanMultiConn | tfSendCache | tfSendFUA | tfSendTrim | tfSendWriteZeroes | tfSendFastZero
	for _, tc := range []struct {
		name     string
		flags    uint32
		noZeroes bool
	}{
		{"zeroes", 0, false},
		{"no_zeroes", clientNoZeroes, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, sock)
			if hf := c.hello(tc.flags); hf != flagFixedNewstyle|flagNoZeroes {
				t.Fatalf("handshake flags %#x", hf)
			}
			c.opt(optExportName, []byte("a"))
			b := c.read(10)
			if size, flags := binary.BigEndian.Uint64(b), binary.BigEndian.Uint16(b[8:]); size != 8192 || flags != rw {
				t.Fatalf("size %d, transmission flags %#x, want 8192, %#x", size, flags, rw)
			}
			if !tc.noZeroes {
				if z := c.read(124); !bytes.Equal(z, make([]byte, 124)) {
					t.Fatalf("124 zero bytes expected, got % x", z)
				}
			}
			// Transmission follows at once: with NO_ZEROES, zero bytes sent
			// anyway would be read here as the reply's magic.
			want := bytes.Repeat([]byte(tc.name), 512/len(tc.name)+1)[:512]
			c.request(cmdWrite, 0, 1, 1024, 512, want)
			if e, cookie := c.simple(); e != 0 || cookie != 1 {
				t.Fatalf("write: error %d cookie %d", e, cookie)
			}
			c.request(cmdRead, 0, 2, 1024, 512, nil)
			if e, cookie := c.simple(); e != 0 || cookie != 2 {
				t.Fatalf("read: error %d cookie %d", e, cookie)
			}
			if got := c.read(512); !bytes.Equal(got, want) {
				t.Fatalf("read back % x", got[:16])
			}
		})
	}
}

// EXPORT_NAME has no error reply: an unknown export from a plain client
// closes the connection, as it does from a fixed one.
func TestPlainNewstyleUnknownExport(t *testing.T) {
	s, sock := startServer(t, testExports{"a": newMem(512), "b": newMem(512)}, nil)
	c := dial(t, sock)
	c.hello(0)
	c.opt(optExportName, []byte("nope"))
	c.expectClosed()
	if n := s.Stats().HandshakeFailed[HandshakeUnknownExport].Load(); n != 1 {
		t.Fatalf("unknown_export counted %d times", n)
	}
}

// Options other than EXPORT_NAME from a plain client: those the server
// implements are honoured as for a fixed client (proto.md lets a server
// honour fixed newstyle from a client that did not set the bit; go-nbd's
// List depends on it); one it does not know closes the connection without
// a reply, since non-fixed newstyle has no reply meaning "unsupported".
func TestPlainNewstyleOtherOptions(t *testing.T) {
	s, sock := startServer(t, testExports{"a": newMem(8192)}, nil)

	c := dial(t, sock)
	c.hello(0)
	c.opt(optList, nil)
	if typ, d := c.optReply(optList); typ != repServer || string(d[4:]) != "a" {
		t.Fatalf("LIST: %#x %q", typ, d)
	}
	if typ, _ := c.optReply(optList); typ != repAck {
		t.Fatalf("LIST ack: %#x", typ)
	}
	c.opt(optInfo, infoData("a"))
	if typ, d := c.optReply(optInfo); typ != repInfo || binary.BigEndian.Uint16(d) != infoExport ||
		binary.BigEndian.Uint64(d[2:]) != 8192 {
		t.Fatalf("INFO: %#x % x", typ, d)
	}
	for typ, _ := c.optReply(optInfo); typ != repAck; typ, _ = c.optReply(optInfo) {
		if typ != repInfo {
			t.Fatalf("INFO reply %#x", typ)
		}
	}
	if size, _ := c.goExport("a"); size != 8192 {
		t.Fatalf("GO: size %d", size)
	}
	c.request(cmdRead, 0, 7, 0, 512, nil)
	if e, cookie := c.simple(); e != 0 || cookie != 7 {
		t.Fatalf("read: error %d cookie %d", e, cookie)
	}
	c.read(512)

	refused := []struct {
		name string
		opt  []byte
	}{
		{"unknown", optBytes(99, []byte("x"))},
		{"starttls", optBytes(optStartTLS, nil)},
		// Closed on the header: the data announced is never sent.
		{"unknown_oversized", optBytes(99, nil)[:12]},
		{"unknown_after_list", append(optBytes(optList, nil), optBytes(99, nil)...)},
	}
	refused[2].opt = binary.BigEndian.AppendUint32(refused[2].opt, maxOptionLen+1)
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, sock)
			c.hello(clientNoZeroes)
			c.write(tc.opt)
			if tc.name == "unknown_after_list" {
				c.optReply(optList)
				if typ, _ := c.optReply(optList); typ != repAck {
					t.Fatalf("LIST ack: %#x", typ)
				}
			}
			c.expectClosed()
		})
	}
	if n := s.Stats().HandshakeFailed[HandshakeBadFlags].Load(); n != uint64(len(refused)) {
		t.Fatalf("bad_flags counted %d times, want %d", n, len(refused))
	}
	// The same unknown option from a fixed client is answered and the
	// session goes on.
	c = dial(t, sock)
	c.hello(clientFixedNewstyle)
	c.opt(99, []byte("x"))
	if typ, _ := c.optReply(99); typ != repErrUnsup {
		t.Fatalf("unknown option from a fixed client: %#x", typ)
	}
	if size, _ := c.goExport("a"); size != 8192 {
		t.Fatalf("GO after an unknown option: size %d", size)
	}
}

// A client flag bit the server does not know closes the connection before
// any option (proto.md: the server MUST drop it), with or without fixed
// newstyle, and counts as bad_flags.
func TestUnknownClientFlags(t *testing.T) {
	s, sock := startServer(t, testExports{"a": newMem(512)}, nil)
	flags := []uint32{1 << 2, 1 << 31, clientFixedNewstyle | 1<<5, clientNoZeroes | 1<<2, clientFixedNewstyle | clientNoZeroes | 1<<3}
	for _, f := range flags {
		c := dial(t, sock)
		c.hello(f)
		c.expectClosed()
	}
	if n := s.Stats().HandshakeFailed[HandshakeBadFlags].Load(); n != uint64(len(flags)) {
		t.Fatalf("bad_flags counted %d times, want %d", n, len(flags))
	}
}
