package nbdserver

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// stuckWrites sends n writes of size bytes at m.blockAt (where they block)
// over c with one write, and waits until a reader waits for a bound: the
// export has then taken all of the bytes in flight it can.
func stuckWrites(t *testing.T, s *Server, c *client, m *memExport, n, size int) {
	t.Helper()
	var reqs []byte
	for i := range n {
		reqs = requestBytes(reqs, cmdWrite, 0, uint64(100+i), uint64(m.blockAt), uint32(size), make([]byte, size))
	}
	go c.c.Write(reqs) // blocks once the server stops reading
	testkit.WaitFor(t, 10*time.Second, "the stuck export's reader to wait for a bound", func() bool {
		return s.Stats().InFlightWaits.Load()+s.Stats().ExportInFlightWaits.Load() > 0
	})
}

// answered reads n bytes of replies off c within 10 s, or fails the test
// saying what stalled. (The client's helpers fail from their goroutine.)
func answered(t *testing.T, c *client, n int, what string) []byte {
	t.Helper()
	got := make(chan error, 1)
	buf := make([]byte, n)
	go func() {
		_, err := io.ReadFull(c.br, buf)
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no reply within 10 s: stalled behind another export's stuck requests", what)
	}
	return buf
}

// An export whose requests are stuck (its backend blocks) holds at most
// its share of the server's bound on bytes in flight: another export's
// reads and writes, on another connection, still go through.
func TestExportShareKeepsOthersGoing(t *testing.T) {
	stuck := newMem(8 << 20)
	stuck.blockAt, stuck.block = 4<<20, make(chan struct{})
	other := newMem(1 << 20)
	s, sock := startServer(t, testExports{"stuck": stuck, "other": other}, func(s *Server) {
		s.MaxInFlightBytesTotal = 2 << 20 // the share: 1 MiB by default
	})
	a := dial(t, sock)
	a.connect("stuck", false)
	b := dial(t, sock)
	b.connect("other", false)
	// Five 512 KiB writes would take the whole bound, and more.
	stuckWrites(t, s, a, stuck, 5, 512<<10)
	if got := s.Gauges().InFlightBytes; got != 1<<20 {
		t.Errorf("the stuck export holds %d bytes in flight, want its share, %d", got, 1<<20)
	}

	data := bytes.Repeat([]byte("gdm!"), 16<<10) // 64 KiB
	b.request(cmdWrite, 0, 1, 4096, uint32(len(data)), data)
	if rep := answered(t, b, 16, "the other export's write"); binary.BigEndian.Uint32(rep[4:]) != 0 {
		t.Fatalf("the other export's write: errno %d", binary.BigEndian.Uint32(rep[4:]))
	}
	b.request(cmdRead, 0, 2, 4096, uint32(len(data)), nil)
	rep := answered(t, b, 16+len(data), "the other export's read")
	if binary.BigEndian.Uint32(rep[4:]) != 0 || !bytes.Equal(rep[16:], data) {
		t.Fatalf("the other export's read: errno %d, data right: %v", binary.BigEndian.Uint32(rep[4:]), bytes.Equal(rep[16:], data))
	}
	if n := s.Stats().InFlightWaits.Load(); n != 0 {
		t.Errorf("%d waits for the server's bound, want none: the stuck export stayed within its share", n)
	}

	close(stuck.block)
	for range 5 {
		if errno, _ := a.simple(); errno != 0 {
			t.Fatalf("a stuck write, once unblocked: errno %d", errno)
		}
	}
	testkit.WaitFor(t, 10*time.Second, "every byte given back", func() bool { return s.Gauges().InFlightBytes == 0 })
}

// An export's share exists while connections serve it: one share per
// export, whatever its names (the same Export under two names is one
// export, as a renamed device is), dropped with its last connection. A
// request larger than the share runs alone; a reader waiting for its
// export's share gives up when its connection is ended.
func TestExportShareLifetime(t *testing.T) {
	m := newMem(8 << 20)
	m.blockAt, m.block = 4<<20, make(chan struct{})
	defer close(m.block)
	s, sock := startServer(t, testExports{"a": m, "renamed": m, "b": newMem(4 << 20)}, func(s *Server) {
		s.MaxInFlightBytesTotal = 2 << 20
	})
	shares := func() (int, map[Export]int) { return exportShares(s) }
	b := dial(t, sock)
	b.connect("b", false)
	b.request(cmdRead, 0, 1, 0, 3<<20, nil) // over the share and the bound: alone
	if errno, _ := b.simple(); errno != 0 {
		t.Fatalf("a read over the share, alone: errno %d", errno)
	}
	b.read(3 << 20)

	a := dial(t, sock)
	a.connect("a", false)
	r := dial(t, sock)
	r.connect("renamed", false)
	// A connection joins its export's share once its handshake is over,
	// which is just after the client has its GO reply.
	testkit.WaitFor(t, 10*time.Second, "2 shares, m's used by both of its connections", func() bool {
		n, conns := shares()
		return n == 2 && conns[m] == 2
	})
	stuckWrites(t, s, a, m, 3, 512<<10)
	// r's reader waits for the share that a's stuck writes hold; ending r
	// must wake it, a's writes being as stuck as before.
	r.request(cmdWrite, 0, 1, 0, 4096, make([]byte, 4096))
	testkit.WaitFor(t, 10*time.Second, "r's reader to wait for the share", func() bool { return s.Stats().ExportInFlightWaits.Load() == 2 })
	// Both readers blocked in the wait (a's and r's), so that only the
	// kill's wake-up can end r's.
	s.mu.Lock()
	share := s.shares[m].budget
	s.mu.Unlock()
	testkit.WaitFor(t, 10*time.Second, "r's reader blocked in the share", func() bool { return waitingIn(share) == 2 })
	victim := connServing(s, "renamed")
	victim.kill()
	select {
	case <-victim.done:
	case <-time.After(10 * time.Second):
		t.Fatal("a connection waiting for its export's share did not end when killed")
	}
	if n, conns := shares(); n != 2 || conns[m] != 1 {
		t.Fatalf("%d shares, m's used by %d, after r ended: want m's used by a alone", n, conns[m])
	}
	if n := s.Disconnect(m); n != 1 {
		t.Fatalf("Disconnect ended %d connections, want 1", n)
	}
	if n, conns := shares(); n != 1 || conns[m] != 0 {
		t.Fatalf("%d shares (m's used by %d) after m's connections ended: want only b's", n, conns[m])
	}
	b.request(cmdDisc, 0, 2, 0, 0, nil)
	b.expectClosed()
	testkit.WaitFor(t, 10*time.Second, "no share left with no connection", func() bool { n, _ := shares(); return n == 0 })
	if got := s.Gauges().InFlightBytes; got != 0 {
		t.Fatalf("%d bytes still in flight", got)
	}
}

// exportShares returns how many exports have a share of the bound, and how
// many connections use each.
func exportShares(s *Server) (n int, conns map[Export]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns = map[Export]int{}
	for e, sh := range s.shares {
		conns[e] = sh.conns
	}
	return len(s.shares), conns
}

// connServing returns a connection of s serving the export named name.
func connServing(s *Server, name string) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.exportName() == name {
			return c
		}
	}
	return nil
}

// An export's share defaults to half of the server's bound, and to none
// when the server's bound is off; a share set is kept.
func TestExportShareDefault(t *testing.T) {
	for _, tc := range []struct{ total, per, want int64 }{
		{0, 0, DefaultMaxInFlightTotal / 2},
		{64 << 20, 0, 32 << 20},
		{1, 0, 1},
		{-1, 0, -1},
		{64 << 20, 48 << 20, 48 << 20},
		{64 << 20, -1, -1},
	} {
		s := Server{MaxInFlightBytesTotal: tc.total, MaxInFlightBytesPerExport: tc.per}
		s.init()
		if s.MaxInFlightBytesPerExport != tc.want {
			t.Errorf("total %d, per export %d: per export %d after init, want %d", tc.total, tc.per, s.MaxInFlightBytesPerExport, tc.want)
		}
	}
}
