package nbdserver

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestExportNameOption(t *testing.T) {
	m := newMem(8192)
	_, sock := startServer(t, testExports{"a": m}, nil)
	for _, noZeroes := range []bool{false, true} {
		c := dial(t, sock)
		f := clientFixedNewstyle
		if noZeroes {
			f |= clientNoZeroes
		}
		if hf := c.hello(f); hf != flagFixedNewstyle|flagNoZeroes {
			t.Fatalf("handshake flags %#x", hf)
		}
		c.opt(optExportName, []byte("a"))
		b := c.read(10)
		if binary.BigEndian.Uint64(b) != 8192 {
			t.Fatalf("size % x", b)
		}
		if !noZeroes {
			if z := c.read(124); !bytes.Equal(z, make([]byte, 124)) {
				t.Fatal("124 zero bytes expected")
			}
		}
		c.request(cmdRead, 0, 1, 0, 512, nil)
		if e, _ := c.simple(); e != 0 {
			t.Fatal(e)
		}
		c.read(512)
	}
	// Unknown export via EXPORT_NAME: nothing to reply with; closed.
	c := dial(t, sock)
	c.hello(clientFixedNewstyle)
	c.opt(optExportName, []byte("nope"))
	c.expectClosed()
}

// An export with a minimum block size (crypt's sector_size) advertises it,
// and a preferred size no smaller.
func TestInfoMinimumBlockSize(t *testing.T) {
	for _, c := range []struct{ min, wantMin, wantPref uint32 }{{0, 1, 4096}, {4096, 4096, 4096}, {8192, 8192, 8192}} {
		m := newMem(65536)
		m.minBlock = c.min
		_, sock := startServer(t, testExports{"a": m}, nil)
		cl := dial(t, sock)
		cl.hello(clientFixedNewstyle | clientNoZeroes)
		cl.opt(optInfo, infoData("a", infoBlockSize))
		bs := infoReplies(t, cl)[infoBlockSize]
		if got, pref := binary.BigEndian.Uint32(bs), binary.BigEndian.Uint32(bs[4:]); got != c.wantMin || pref != c.wantPref {
			t.Errorf("export minimum %d: advertised minimum %d, preferred %d; want %d, %d", c.min, got, pref, c.wantMin, c.wantPref)
		}
	}
}

// An export that takes no discards does not advertise TRIM, and a TRIM
// sent anyway is refused with EINVAL before it reaches the export.
func TestNoTrimExport(t *testing.T) {
	checkUnadvertised(t, func(m *memExport) { m.noTrim = true }, tfSendTrim, cmdTrim)
}

func TestInfoListAbortUnknown(t *testing.T) {
	s, sock := startServer(t, testExports{"a": newMem(8192), "b": newMem(512)}, nil)
	c := dial(t, sock)
	c.hello(clientFixedNewstyle | clientNoZeroes)

	c.opt(optInfo, infoData("a", infoName, infoDescription, infoBlockSize))
	got := infoReplies(t, c)
	if binary.BigEndian.Uint64(got[infoExport]) != 8192 || string(got[infoName]) != "a" || string(got[infoDescription]) != "desc of a" {
		t.Fatalf("INFO = %v", got)
	}
	bs := got[infoBlockSize]
	if binary.BigEndian.Uint32(bs) != 1 || binary.BigEndian.Uint32(bs[4:]) != 4096 || binary.BigEndian.Uint32(bs[8:]) != 32<<20 {
		t.Fatalf("block size % x", bs)
	}

	c.opt(optList, nil)
	if names := listReplies(c); len(names) != 2 {
		t.Fatalf("LIST = %v", names)
	}
	c.opt(optList, []byte{1})
	if typ, _ := c.optReply(optList); typ != repErrInvalid {
		t.Fatalf("LIST with data: %#x", typ)
	}
	// Unknown option, malformed INFO, unknown export: errors, and on we go.
	c.opt(99, []byte("x"))
	if typ, _ := c.optReply(99); typ != repErrUnsup {
		t.Fatalf("unknown option: %#x", typ)
	}
	c.opt(optStartTLS, nil)
	if typ, _ := c.optReply(optStartTLS); typ != repErrUnsup {
		t.Fatalf("STARTTLS: %#x", typ)
	}
	for _, bad := range [][]byte{{0, 0}, {0, 0, 0, 9, 'a', 0, 0}, append(infoData("a"), 0)} {
		c.opt(optInfo, bad)
		if typ, _ := c.optReply(optInfo); typ != repErrInvalid {
			t.Fatalf("malformed INFO % x: %#x", bad, typ)
		}
	}
	c.opt(optGo, infoData("zz"))
	if typ, _ := c.optReply(optGo); typ != repErrUnknown {
		t.Fatalf("GO unknown export: %#x", typ)
	}
	c.opt(optStructuredReply, []byte{1})
	if typ, _ := c.optReply(optStructuredReply); typ != repErrInvalid {
		t.Fatalf("STRUCTURED_REPLY with data: %#x", typ)
	}
	// Oversized but skippable option data: ERR_TOO_BIG, connection lives.
	c.opt(optInfo, make([]byte, maxOptionLen+1))
	if typ, _ := c.optReply(optInfo); typ != repErrTooBig {
		t.Fatalf("oversized option: %#x", typ)
	}
	c.opt(optAbort, nil)
	if typ, _ := c.optReply(optAbort); typ != repAck {
		t.Fatalf("ABORT: %#x", typ)
	}
	c.expectClosed()
	if s.Stats().HandshakeFailed[HandshakeAborted].Load() != 1 || s.Stats().Options[optInfo].Load() != 5 {
		t.Fatalf("stats: aborted %d, info options %d", s.Stats().HandshakeFailed[HandshakeAborted].Load(), s.Stats().Options[optInfo].Load())
	}
}

// infoReplies reads the replies to INFO up to its ACK, by info type.
func infoReplies(t *testing.T, c *client) map[uint16][]byte {
	t.Helper()
	got := map[uint16][]byte{}
	for {
		typ, d := c.optReply(optInfo)
		if typ == repAck {
			return got
		}
		if typ != repInfo {
			t.Fatalf("INFO reply %#x", typ)
		}
		got[binary.BigEndian.Uint16(d)] = d[2:]
	}
}

// listReplies reads the replies to LIST up to its ACK: the names listed.
func listReplies(c *client) []string {
	var names []string
	for {
		typ, d := c.optReply(optList)
		if typ == repAck {
			return names
		}
		names = append(names, string(d[4:4+binary.BigEndian.Uint32(d)]))
	}
}

func TestHandshakeProtocolErrorsClose(t *testing.T) {
	s, sock := startServer(t, testExports{"a": newMem(512)}, func(s *Server) { s.HandshakeTimeout = 200 * time.Millisecond })
	// Bad option magic.
	c := dial(t, sock)
	c.hello(clientFixedNewstyle)
	c.write(make([]byte, 16))
	c.expectClosed()
	// A client flag the server does not know.
	c = dial(t, sock)
	c.hello(clientFixedNewstyle | 1<<2)
	c.expectClosed()
	// Option data too long to skip: closed without reading it.
	c = dial(t, sock)
	c.hello(clientFixedNewstyle)
	h := binary.BigEndian.AppendUint64(nil, magicOption)
	h = binary.BigEndian.AppendUint32(h, optInfo)
	h = binary.BigEndian.AppendUint32(h, 1<<31)
	c.write(h)
	c.expectClosed()
	// A client that stalls mid-handshake is closed at the timeout.
	c = dial(t, sock)
	c.hello(clientFixedNewstyle)
	c.expectClosed()
	st := s.Stats()
	if st.HandshakeFailed[HandshakeBadMagic].Load() != 1 || st.HandshakeFailed[HandshakeBadFlags].Load() != 1 ||
		st.HandshakeFailed[HandshakeOversized].Load() != 1 || st.HandshakeFailed[HandshakeIO].Load() != 1 {
		t.Fatalf("handshake failure counts %v %v %v %v", st.HandshakeFailed[HandshakeBadMagic].Load(),
			st.HandshakeFailed[HandshakeBadFlags].Load(), st.HandshakeFailed[HandshakeOversized].Load(), st.HandshakeFailed[HandshakeIO].Load())
	}
}

func TestMetaContexts(t *testing.T) {
	_, sock := startServer(t, testExports{"a": newMem(8192)}, nil)
	c := dial(t, sock)
	c.hello(clientFixedNewstyle | clientNoZeroes)
	// SET before structured replies: invalid.
	c.opt(optSetMetaContext, metaData("a", metaBaseAllocation))
	if typ, _ := c.optReply(optSetMetaContext); typ != repErrInvalid {
		t.Fatalf("SET without structured: %#x", typ)
	}
	for _, q := range [][]string{nil, {"base:"}, {metaBaseAllocation}} {
		c.opt(optListMetaContext, metaData("a", q...))
		typ, d := c.optReply(optListMetaContext)
		if typ != repMetaContext || string(d[4:]) != metaBaseAllocation {
			t.Fatalf("LIST %v: %#x %q", q, typ, d)
		}
		if typ, _ := c.optReply(optListMetaContext); typ != repAck {
			t.Fatalf("LIST ack %#x", typ)
		}
	}
	c.opt(optListMetaContext, metaData("a", "qemu:dirty-bitmap:x"))
	if typ, _ := c.optReply(optListMetaContext); typ != repAck {
		t.Fatalf("LIST of an unknown context: %#x, want a bare ACK", typ)
	}
	c.opt(optListMetaContext, metaData("zz"))
	if typ, _ := c.optReply(optListMetaContext); typ != repErrUnknown {
		t.Fatalf("LIST on unknown export: %#x", typ)
	}
	c.opt(optListMetaContext, []byte{0, 0, 0, 1, 'a', 0, 0, 0, 2, 0, 0, 0, 9})
	if typ, _ := c.optReply(optListMetaContext); typ != repErrInvalid {
		t.Fatalf("truncated query: %#x", typ)
	}
}

// An export the handshake opened is released when the handshake then
// fails: a client that selects an export and goes away before the reply
// must not leave it counted as open (the daemon would call its device
// busy for good).
func TestHandshakeFailureReleasesExport(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  []byte
	}{
		{"export_name", optBytes(optExportName, []byte("a"))},
		{"go", optBytes(optGo, infoData("a"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMem(64 << 10)
			srv := &Server{Exports: testExports{"a": m}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			server, client := net.Pipe()
			c := newConn(srv, server)
			done := make(chan struct{})
			go func() {
				c.serve()
				close(done)
			}()
			if _, err := io.ReadFull(client, make([]byte, 18)); err != nil {
				t.Fatal(err)
			}
			// A pipe's write returns once the server has read it all; the
			// server's reply then finds the client gone.
			if _, err := client.Write(append(binary.BigEndian.AppendUint32(nil, clientFixedNewstyle|clientNoZeroes), tc.opt...)); err != nil {
				t.Fatal(err)
			}
			client.Close()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the connection did not end")
			}
			if n := m.opened.Load(); n != 0 {
				t.Fatalf("export still open %d times after its handshake failed", n)
			}
		})
	}
}

// An error reply's message is a string, at most 4096 bytes of UTF-8
// (proto.md), even where it quotes a longer export name the client sent:
// it is cut at a character's start.
func TestOptionErrorMessageBounded(t *testing.T) {
	_, sock := startServer(t, testExports{"a": newMem(4096)}, nil)
	c := dial(t, sock)
	c.hello(clientFixedNewstyle | clientNoZeroes)
	for _, name := range []string{strings.Repeat("é", 4500), strings.Repeat("\x01", 9000)} {
		c.opt(optInfo, infoData(name))
		typ, msg := c.optReply(optInfo)
		if typ != repErrUnknown || len(msg) > maxString || !utf8.Valid(msg) {
			t.Errorf("INFO for a %d-byte name: reply %#x with a %d-byte message (valid UTF-8: %v)", len(name), typ, len(msg), utf8.Valid(msg))
		}
	}
	c.opt(optList, nil)
	if names := listReplies(c); len(names) != 1 {
		t.Fatalf("LIST after: %q", names)
	}
}

// A connection that Shutdown told to stop reading before its handshake
// began (between the accept's track and serve) ends at once when its
// client sends nothing, rather than after the handshake timeout: the
// handshake's deadline once replaced the one stopReading set.
func TestStoppedBeforeHandshakeEnds(t *testing.T) {
	srv := &Server{Exports: testExports{"a": newMem(4096)}, HandshakeTimeout: time.Hour,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	server, client := net.Pipe()
	defer client.Close()
	c := newConn(srv, server)
	c.stopReading()
	done := make(chan struct{})
	go func() {
		c.serve()
		close(done)
	}()
	if _, err := io.ReadFull(client, make([]byte, 18)); err != nil { // the greeting
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a connection stopped before its handshake waits out the handshake timeout")
	}
}
