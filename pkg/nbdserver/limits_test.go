package nbdserver

import (
	"bufio"
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// waitingIn counts the readers blocked in g.acquire, waiting on its cond:
// a waiter counts itself with g.mu held and gives mu up only in the wait.
func waitingIn(g *sharedBudget) int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiters.Load()
}

// dialNet is dial for any network, with the greeting read: the server
// has then admitted the connection.
func dialNet(t *testing.T, network, addr string) *client {
	t.Helper()
	nc, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, c: nc, br: bufio.NewReader(nc)}
}

// refused checks the server closed c before sending a byte.
func refused(t *testing.T, network, addr string) {
	t.Helper()
	nc, err := net.Dial(network, addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return // the server's reset came before connect returned
	}
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if n, err := nc.Read(b[:]); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("connection past a limit: read %d bytes, err %v; want it closed at once", n, err)
	}
}

// Connections past the per-client or the global limit are closed at once
// and counted by reason; the clients are told apart by IP (127.0.0.1 and
// ::1 here), and a slot freed by a client that leaves is taken again.
func TestConnectionLimitsTCP(t *testing.T) {
	s := &Server{Exports: testExports{"a": newMem(1 << 20)}, Log: discardLog(), MaxConns: 3, MaxConnsPerClient: 2}
	var addrs []string
	for _, a := range []string{"127.0.0.1:0", "[::1]:0"} {
		l, err := net.Listen("tcp", a)
		if err != nil {
			testkit.SkipOrFail(t, "listen %s: %v", a, err)
		}
		addrs = append(addrs, l.Addr().String())
		go s.Serve(l)
	}
	defer s.Close()
	v4a := dialNet(t, "tcp", addrs[0])
	v4a.hello(clientFixedNewstyle)
	dialNet(t, "tcp", addrs[0]).hello(clientFixedNewstyle)
	refused(t, "tcp", addrs[0]) // a third from 127.0.0.1
	dialNet(t, "tcp", addrs[1]).hello(clientFixedNewstyle)
	refused(t, "tcp", addrs[1]) // a fourth in all
	st := s.Stats()
	if g, p := st.Refused[RefusedGlobal].Load(), st.Refused[RefusedPerClient].Load(); g != 1 || p != 1 {
		t.Fatalf("refused: global %d, per client %d; want 1 and 1", g, p)
	}
	v4a.c.Close()
	testkit.WaitFor(t, 10*time.Second, "the closed connection to leave", func() bool { return s.Gauges().Conns == 2 })
	dialNet(t, "tcp", addrs[1]).hello(clientFixedNewstyle)
}

// Clients are IPv4 addresses and IPv6 /64s.
func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:1", "ip:127.0.0.1"},
		{"[::ffff:10.0.0.1]:1", "ip:10.0.0.1"},
		{"[2001:db8:1:2:3:4:5:6]:1", "ip:2001:db8:1:2::/64"},
		{"[::1]:1", "ip:::/64"},
	} {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := tcpKey(a); got != tc.want {
			t.Errorf("%s: key %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// On a UNIX socket every client has the same address; they are told apart
// by peer uid (all of this test's are one uid, so one client).
func TestConnectionLimitsUnix(t *testing.T) {
	s, sock := startServer(t, testExports{"a": newMem(1 << 20)}, func(s *Server) { s.MaxConnsPerClient = 2 })
	for range 2 {
		dialNet(t, "unix", sock).hello(clientFixedNewstyle)
	}
	refused(t, "unix", sock)
	if p := s.Stats().Refused[RefusedPerClient].Load(); p != 1 {
		t.Fatalf("refused per client: %d, want 1", p)
	}
	var keys []string
	s.mu.Lock()
	for k := range s.clients {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	if len(keys) != 1 || keys[0][:4] != "uid:" {
		t.Fatalf("clients %q, want one uid", keys)
	}
}

// A client that sends reads and never takes the replies is dropped after
// WriteTimeout, on the copying (TCP) and on the splicing path (UNIX), and everything it
// held (budget, pipes, its connection) is released.
func TestWriteTimeout(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			m := &spliceMem{memExport: newMem(8 << 20)}
			m.as = m
			s, addr := startServerOn(t, network, testExports{"a": m.memExport}, func(s *Server) {
				s.WriteTimeout = 200 * time.Millisecond
			})
			c := dialNet(t, network, addr)
			c.connect("a", false)
			var reqs []byte
			for i := range 64 {
				reqs = requestBytes(reqs, cmdRead, 0, uint64(i), uint64(i%8)<<20, 1<<20, nil)
			}
			c.write(reqs)
			testkit.WaitFor(t, 10*time.Second, "a write timeout", func() bool { return s.Stats().WriteTimeouts.Load() == 1 })
			testkit.WaitFor(t, 10*time.Second, "the connection to end", func() bool { return s.Gauges().Conns == 0 })
			if g := s.Gauges(); g.InFlightBytes != 0 {
				t.Fatalf("after the drop: %+v, want nothing in flight", g)
			}
			// UNIX connections start splicing, TCP ones copying (see
			// startSetting): each path is tested on one.
			if spliced := m.spliced.Load() != 0; spliced != (network == "unix") {
				t.Fatalf("over %s reads were spliced: %v", network, spliced)
			}
			testkit.WaitFor(t, 10*time.Second, "the last connection to close the idle pipes", func() bool { return s.pipes.Open() == 0 })
		})
	}
}

// A client that sends a write's header and withholds its payload is
// dropped after PayloadTimeout, and the budget the payload held is given
// back.
func TestPayloadTimeout(t *testing.T) {
	s, sock := startServer(t, testExports{"a": newMem(4 << 20)}, func(s *Server) { s.PayloadTimeout = 100 * time.Millisecond })
	c := dial(t, sock)
	c.connect("a", false)
	c.write(append(requestBytes(nil, cmdWrite, 0, 1, 0, 1<<20, nil), make([]byte, 1000)...))
	c.expectClosed()
	if n := s.Stats().PayloadTimeouts.Load(); n != 1 {
		t.Fatalf("PayloadTimeouts = %d, want 1", n)
	}
	testkit.WaitFor(t, 10*time.Second, "the payload's budget back", func() bool { return s.Gauges().InFlightBytes == 0 })
}

// A connection with nothing in flight that sends nothing for IdleTimeout
// is closed; by default there is no idle timeout.
func TestIdleTimeout(t *testing.T) {
	s, sock := startServer(t, testExports{"a": newMem(1 << 20)}, func(s *Server) { s.IdleTimeout = 100 * time.Millisecond })
	c := dial(t, sock)
	c.connect("a", false)
	c.request(cmdRead, 0, 1, 0, 4096, nil)
	c.simple()
	c.read(4096)
	c.expectClosed()
	if n := s.Stats().IdleTimeouts.Load(); n != 1 {
		t.Fatalf("IdleTimeouts = %d, want 1", n)
	}
	var d Server
	d.init()
	if d.IdleTimeout != 0 {
		t.Fatalf("default IdleTimeout %v, want none", d.IdleTimeout)
	}
}

// The idle timeout also closes a connection whose reader went back to
// waiting while a request was still being served: the reader hands its
// batches to workers once the backend is slow (past readerServesMax, as
// after this stall) or when the tuner picks it, and the last request to
// finish must then start the idle clock. (Broken once: only a reader that
// found nothing in flight armed it, and such a connection never timed out.)
func TestIdleTimeoutAfterHandedOverRequest(t *testing.T) {
	m := newMem(1 << 20)
	m.blockAt, m.block = 8192, make(chan struct{})
	s, sock := startServer(t, testExports{"a": m}, func(s *Server) { s.IdleTimeout = 100 * time.Millisecond })
	c := dial(t, sock)
	c.connect("a", false)
	c.request(cmdRead, 0, 1, 8192, 4096, nil)
	testkit.WaitFor(t, 10*time.Second, "the blocked read to be rescued", func() bool { return s.Stats().Stalls.Load() == 1 })
	testkit.WaitFor(t, 10*time.Second, "a reader waiting with the read in flight", func() bool { return readerWaiting(s) })
	close(m.block)
	if errno, _ := c.simple(); errno != 0 {
		t.Fatalf("errno %d", errno)
	}
	c.read(4096)
	c.expectClosed()
	if n := s.Stats().IdleTimeouts.Load(); n != 1 {
		t.Fatalf("IdleTimeouts = %d, want 1", n)
	}
}

// The bytes in flight across connections are bounded: a reader waits for
// room (counted), proceeds once another connection's request is done, and
// gives up its wait when its connection is ended. One request larger than
// the bound runs when nothing else is in flight. (Exports' shares of the
// bound are off: see share_test.go.)
func TestSharedInFlightBound(t *testing.T) {
	m := newMem(8 << 20)
	m.blockAt, m.block = 4<<20, make(chan struct{})
	s, sock := startServer(t, testExports{"a": m}, func(s *Server) {
		s.MaxInFlightBytesTotal = 1 << 20
		s.MaxInFlightBytesPerExport = -1 // the server's bound alone: one export here
	})
	a := dial(t, sock)
	a.connect("a", false)
	b := dial(t, sock)
	b.connect("a", false)
	a.request(cmdRead, 0, 1, 4<<20, 1<<20, nil) // blocks, holding the whole bound
	testkit.WaitFor(t, 10*time.Second, "a's read in flight", func() bool { return s.Gauges().InFlightBytes == 1<<20 })
	b.request(cmdRead, 0, 2, 0, 4096, nil)
	testkit.WaitFor(t, 10*time.Second, "b to wait for room", func() bool { return s.Stats().InFlightWaits.Load() == 1 })
	testkit.WaitFor(t, 10*time.Second, "b's reader blocked in the bound", func() bool { return waitingIn(s.shared) == 1 })
	close(m.block)
	for _, c := range []*client{a, b} {
		if errno, _ := c.simple(); errno != 0 {
			t.Fatalf("errno %d", errno)
		}
	}
	a.read(1 << 20)
	b.read(4096)
	b.request(cmdRead, 0, 3, 0, 2<<20, nil) // over the bound, alone
	if errno, _ := b.simple(); errno != 0 {
		t.Fatalf("a read over the bound, alone: errno %d", errno)
	}
	b.read(2 << 20)
}

// A reader waiting for room in the shared bound gives up when its
// connection is ended.
func TestSharedInFlightKill(t *testing.T) {
	m := newMem(8 << 20)
	m.blockAt, m.block = 4<<20, make(chan struct{})
	defer close(m.block)
	s, sock := startServer(t, testExports{"a": m}, func(s *Server) {
		s.MaxInFlightBytesTotal = 1 << 20
		s.MaxInFlightBytesPerExport = -1 // the server's bound alone: one export here
	})
	a := dial(t, sock)
	a.connect("a", false)
	a.request(cmdRead, 0, 4, 4<<20, 1<<20, nil)
	testkit.WaitFor(t, 10*time.Second, "a's read in flight", func() bool { return s.Gauges().InFlightBytes == 1<<20 })
	c := dial(t, sock)
	c.connect("a", false)
	c.request(cmdRead, 0, 5, 0, 4096, nil)
	testkit.WaitFor(t, 10*time.Second, "c to wait for room", func() bool { return s.Stats().InFlightWaits.Load() == 1 })
	// Blocked in the wait, so that only the kill's wake-up can end it.
	testkit.WaitFor(t, 10*time.Second, "c's reader blocked in the bound", func() bool { return waitingIn(s.shared) == 1 })
	s.mu.Lock()
	var victim *conn
	for cc := range s.conns {
		cc.budget.mu.Lock()
		if cc.budget.n == 1 && cc.budget.bytes == 4096 {
			victim = cc
		}
		cc.budget.mu.Unlock()
	}
	s.mu.Unlock()
	if victim == nil {
		t.Fatal("no connection waiting for room")
	}
	victim.kill()
	select {
	case <-victim.done:
	case <-time.After(10 * time.Second):
		t.Fatal("a killed connection waiting for room did not end")
	}
}

// The pipe pool holds at most MaxPipes open, counts reads refused a pipe,
// and counts every pipe it closes.
func TestPipeLimit(t *testing.T) {
	var refusedN atomic.Uint64
	pp := pipePool{max: 2, refused: &refusedN}
	p1, p2 := pp.get(), pp.get()
	if p1 == nil || p2 == nil {
		t.Fatal("no pipe")
	}
	if p := pp.get(); p != nil || refusedN.Load() != 1 {
		t.Fatalf("third pipe %v, refused %d; want none, 1", p, refusedN.Load())
	}
	pp.put(p1)
	if p := pp.get(); p != p1 {
		t.Fatal("the idle pipe was not reused")
	}
	pp.discard(p1)
	pp.put(p2)
	if n := pp.Open(); n != 1 {
		t.Fatalf("open %d, want 1", n)
	}
	pp.close()
	if n := pp.Open(); n != 0 {
		t.Fatalf("open %d after close, want 0", n)
	}
}

// The default limits leave the descriptor reserve free: connections plus
// two per pipe plus the reserve never pass RLIMIT_NOFILE.
func TestDefaultLimits(t *testing.T) {
	for _, nofile := range []int{320, 1024, 4096, 65536, 1 << 20} {
		conns, pipes := limitsFor(nofile)
		if conns+2*pipes+FDReserve > nofile {
			t.Errorf("nofile %d: %d conns + 2 × %d pipes + %d reserve passes it", nofile, conns, pipes, FDReserve)
		}
		if conns < minDefaultConns || conns > maxDefaultConns {
			t.Errorf("nofile %d: %d conns", nofile, conns)
		}
	}
	if c, p := limitsFor(1024); c != 384 || p != 192 {
		t.Errorf("nofile 1024: %d conns, %d pipes; want 384, 192", c, p)
	}
}

// readerWaiting reports whether a connection of s has its reader waiting
// for a request under the idle timeout with no deadline yet: requests are
// in flight.
func readerWaiting(s *Server) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.idleMu.Lock()
		w := c.idleWaiting && !c.idleArmed
		c.idleMu.Unlock()
		if w {
			return true
		}
	}
	return false
}
