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
