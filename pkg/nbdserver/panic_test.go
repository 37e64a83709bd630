package nbdserver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// trapConn is a connection that panics, once armed, in Read (after the
// read) or in Write: a stand-in for any bug on the connection's path.
type trapConn struct {
	net.Conn
	onRead, onWrite atomic.Bool
}

func (c *trapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.onRead.Load() {
		panic("test: panic in Read")
	}
	return n, err
}

func (c *trapConn) Write(p []byte) (int, error) {
	if c.onWrite.Load() {
		panic("test: panic in Write")
	}
	return c.Conn.Write(p)
}

// trapListener wraps every accepted connection in a trapConn and hands it
// to the test.
type trapListener struct {
	net.Listener
	accepted chan *trapConn
}

func (l *trapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trapConn{Conn: c}
	l.accepted <- tc
	return tc, nil
}

// A panic anywhere on a connection's goroutines (handshake, reading,
// writing replies, a rescued request's goroutine) ends that connection
// alone: it is counted, the other connections are served on, and the
// panicking one releases everything, so that a graceful shutdown finds no
// connection left hanging.
func TestConnectionPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		// arm sets the trap on the victim's server side, after the
		// handshake unless inHandshake, then makes it spring.
		inHandshake bool
		arm         func(t *testing.T, s *Server, m *memExport, tc *trapConn, c *client)
	}{
		{"handshake", true, func(t *testing.T, s *Server, m *memExport, tc *trapConn, c *client) {
			tc.onRead.Store(true)
			c.hello(clientFixedNewstyle | clientNoZeroes)
		}},
		{"reader", false, func(t *testing.T, s *Server, m *memExport, tc *trapConn, c *client) {
			tc.onRead.Store(true)
			c.request(cmdRead, 0, 1, 0, 4096, nil)
		}},
		{"reader-while-another-waits", false, armWhileAnotherWaits},
		{"writer", false, func(t *testing.T, s *Server, m *memExport, tc *trapConn, c *client) {
			tc.onWrite.Store(true)
			c.request(cmdRead, 0, 1, 0, 4096, nil)
		}},
		{"rescued", false, func(t *testing.T, s *Server, m *memExport, tc *trapConn, c *client) {
			testHookRescued = func() { panic("test: panic in a rescued request") }
			t.Cleanup(func() { testHookRescued = nil })
			// Two requests in one write: the first blocks, the second is
			// rescued by the stall watch.
			m.blockAt, m.block = 8192, make(chan struct{})
			c.write(requestBytes(requestBytes(nil, cmdRead, 0, 1, 8192, 4096, nil), cmdRead, 0, 2, 0, 4096, nil))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { connectionPanic(t, tc.inHandshake, tc.arm) })
	}
}

// armWhileAnotherWaits makes the reader panic while another worker waits
// for the reading turn. A write that stalls ends the reader-serves mode
// (the stall watch rescues its batch and raises the service time): the
// worker that read it hands the reading on to a new worker, and waits for
// the turn again once done. The new one, holding the turn, panics. The
// write blocks until the watch has rescued it: a write that merely takes
// a few milliseconds is rescued only if the watch gets the CPU in time.
func armWhileAnotherWaits(t *testing.T, s *Server, m *memExport, tc *trapConn, c *client) {
	m.blockAt, m.block = 512, make(chan struct{})
	stalls := s.stats.Stalls.Load()
	c.request(cmdWrite, 0, 1, 512, 512, make([]byte, 512))
	testkit.WaitFor(t, 10*time.Second, "the stall watch to rescue the blocked write", func() bool {
		return s.stats.Stalls.Load() > stalls
	})
	close(m.block)
	if errno, _ := c.simple(); errno != 0 {
		t.Fatalf("write: errno %d", errno)
	}
	testkit.WaitFor(t, 10*time.Second, "the stalled write to end the reader-serves mode", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for sc := range s.conns {
			if sc.nc == tc {
				return !sc.readerServes()
			}
		}
		return false
	})
	tc.onRead.Store(true)
	c.request(cmdRead, 0, 2, 0, 4096, nil)
}

// connectionPanic serves two connections, has arm make the second one's
// server side panic (after its handshake unless inHandshake), and checks
// that it alone ends and the server then shuts down cleanly.
func connectionPanic(t *testing.T, inHandshake bool, arm func(t *testing.T, s *Server, m *memExport, tc *trapConn, c *client)) {
	m := newMem(1 << 20)
	exports := testExports{"a": m}
	inner, err := net.Listen("unix", t.TempDir()+"/nbd.sock")
	if err != nil {
		t.Fatal(err)
	}
	l := &trapListener{Listener: inner, accepted: make(chan *trapConn, 4)}
	s := &Server{Exports: exports, Log: discardLog()}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	defer s.Close()

	other := dial(t, inner.Addr().String())
	<-l.accepted
	other.connect("a", false)
	victim := dial(t, inner.Addr().String())
	trap := <-l.accepted
	if !inHandshake {
		victim.connect("a", false)
	}
	arm(t, s, m, trap, victim)
	victim.expectClosed()
	if got := s.Stats().ConnPanics.Load(); got != 1 {
		t.Fatalf("ConnPanics = %d, want 1", got)
	}
	other.request(cmdRead, 0, 5, 0, 4096, nil)
	if errno, cookie := other.simple(); errno != 0 || cookie != 5 {
		t.Fatalf("other connection: errno %d cookie %d", errno, cookie)
	}
	other.read(4096)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v: a connection did not finish after its panic", err)
	}
	<-served
	if g := s.Gauges(); g.InFlightBytes != 0 {
		t.Fatalf("after the panic: %d bytes still held of the shared bound", g.InFlightBytes)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// badAddrConn is a connection whose RemoteAddr panics: a bug in setting a
// connection up, before its own goroutines start.
type badAddrConn struct{ net.Conn }

func (badAddrConn) RemoteAddr() net.Addr { panic("test: panic in RemoteAddr") }

// badFirstListener hands out one badAddrConn, then plain connections.
type badFirstListener struct {
	net.Listener
	done atomic.Bool
}

func (l *badFirstListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil && l.done.CompareAndSwap(false, true) {
		return badAddrConn{c}, nil
	}
	return c, err
}

// A panic while a connection is set up, in the accept loop, closes that
// connection only: the loop serves on.
func TestAcceptPanic(t *testing.T) {
	inner, err := net.Listen("unix", t.TempDir()+"/nbd.sock")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Exports: testExports{"a": newMem(1 << 20)}, Log: discardLog()}
	go s.Serve(&badFirstListener{Listener: inner})
	defer s.Close()
	dial(t, inner.Addr().String()).expectClosed()
	if n := s.Stats().ConnPanics.Load(); n != 1 {
		t.Fatalf("ConnPanics = %d, want 1", n)
	}
	c := dial(t, inner.Addr().String())
	c.connect("a", false)
	c.request(cmdRead, 0, 1, 0, 4096, nil)
	if errno, _ := c.simple(); errno != 0 {
		t.Fatalf("errno %d", errno)
	}
}
