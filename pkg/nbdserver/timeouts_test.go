package nbdserver

import (
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// The timeouts: a client that takes no replies (WriteTimeout), withholds
// a payload (PayloadTimeout) or sends nothing (IdleTimeout) is dropped.

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

// A write too long to serve (past MaxBlockSize, within maxPayloadSkip)
// has its payload read and dropped before check refuses it; that read
// waits under PayloadTimeout too, or a client could send such a header,
// withhold the payload and hold the connection forever (the idle deadline
// is off while a request is being read).
func TestPayloadTimeoutSkippedWrite(t *testing.T) {
	s, sock := startServer(t, testExports{"a": newMem(64 << 20)}, func(s *Server) {
		s.PayloadTimeout = 100 * time.Millisecond
		s.IdleTimeout = 100 * time.Millisecond
	})
	c := dial(t, sock)
	c.connect("a", false)
	c.write(append(requestBytes(nil, cmdWrite, 0, 1, 0, MaxBlockSize+1, nil), make([]byte, 1000)...))
	c.expectClosed()
	if n := s.Stats().PayloadTimeouts.Load(); n != 1 {
		t.Fatalf("PayloadTimeouts = %d, want 1", n)
	}
	testkit.WaitFor(t, 10*time.Second, "the connection's end", func() bool { return s.Gauges().Conns == 0 })
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
