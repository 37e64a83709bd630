package nbdserver

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	cc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { sc.Close(); cc.Close() })
	return sc.(*net.TCPConn), cc.(*net.TCPConn)
}

func newTestSpinReader(t *testing.T, c *net.TCPConn, busy *atomic.Int32) *spinReader {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	s := newSpinReader(raw, busy, &Stats{})
	s.limit = 1
	s.on = true
	return s
}

// A spinning reader hands over the stream's bytes unchanged and in order,
// whether they are there at once or arrive while it spins or parks, and
// then EOF.
func TestSpinReaderStream(t *testing.T) {
	sc, cc := tcpPair(t)
	var busy atomic.Int32
	busy.Store(1)
	s := newTestSpinReader(t, sc, &busy)
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	go func() {
		for i := 0; i < len(want); i += 64 << 10 {
			cc.Write(want[i : i+64<<10])
			if i%(256<<10) == 0 {
				time.Sleep(2 * time.Millisecond) // make the reader wait now and then
			}
		}
		cc.CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d sent", len(got), len(want))
	}
}

// A spin that finds nothing parks, and the reader then parks at once for
// 1, 2, 4 ... up to maxSpinBackoff waits before it spins again: an idle
// client costs one window per many waits. A deadline still ends a read.
func TestSpinReaderBacksOff(t *testing.T) {
	sc, _ := tcpPair(t)
	var busy atomic.Int32
	busy.Store(1)
	s := newTestSpinReader(t, sc, &busy)
	wait := func() {
		t.Helper()
		sc.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := s.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read from a silent client: %v, want the deadline", err)
		}
	}
	spins := 0
	for range 200 {
		backoff, skip := s.backoff, s.skip
		wait()
		if skip == 0 { // this wait spun, found nothing, and parked
			spins++
			if want := min(max(2*backoff, 1), maxSpinBackoff); s.backoff != want || s.skip != want {
				t.Fatalf("after a failed spin backoff %d skip %d, want %d for both", s.backoff, s.skip, want)
			}
		} else if s.skip != skip-1 || s.backoff != backoff {
			t.Fatalf("a backing-off wait left skip %d backoff %d (was %d, %d)", s.skip, s.backoff, skip, backoff)
		}
	}
	// Spins at waits 1, 3, 6, 11, 20, 37, 70, 135 and 200.
	if spins != 9 || s.backoff != maxSpinBackoff {
		t.Fatalf("%d spins in 200 silent waits, backoff %d; want 9 and %d", spins, s.backoff, maxSpinBackoff)
	}
	if p, f := s.stats.SpinsParked.Load(), s.stats.SpinsFound.Load(); p != 9 || f != 0 {
		t.Fatalf("stats count %d parked and %d found spins, want 9 and 0", p, f)
	}
}

// A spin that sees data arrive resets the backoff; a reader whose
// connection is not inline, or whose server has more connections busy than
// its limit, does not spin at all.
func TestSpinReaderWhenToSpin(t *testing.T) {
	sc, cc := tcpPair(t)
	var busy atomic.Int32
	busy.Store(1)
	s := newTestSpinReader(t, sc, &busy)
	s.window = 10 * time.Second // long enough to see the write below
	s.backoff = 8
	go func() {
		time.Sleep(20 * time.Millisecond)
		cc.Write([]byte("x"))
	}()
	if _, err := s.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if s.backoff != 0 || s.stats.SpinsFound.Load() != 1 {
		t.Fatalf("backoff %d, %d spins counted as found after a spin that found data; want 0 and 1", s.backoff, s.stats.SpinsFound.Load())
	}

	if !s.spinning() {
		t.Fatal("inline reader with one busy connection does not spin")
	}
	busy.Store(2)
	if s.spinning() {
		t.Fatal("spins with more busy connections than its limit")
	}
	busy.Store(1)
	s.on = false
	if s.spinning() {
		t.Fatal("spins while the connection is not inline")
	}
	s.on, s.skip = true, 3
	if s.spinning() || s.skip != 2 {
		t.Fatalf("spins while backing off (skip now %d)", s.skip)
	}
}
