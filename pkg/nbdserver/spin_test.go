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

	"github.com/gdm-project/gdm/internal/testkit"
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
	s.readerServes = true
	return s
}

// A spinning reader hands over the stream's bytes unchanged and in order,
// whether they arrive while it spins, are there at once, or arrive after
// it has given up spinning and parked; and then EOF. The writer sends each
// chunk of the first part only once the reader spins on the empty socket,
// so each of those spins finds data; then the bulk, at once; then, with a
// short window, the last chunk only once the reader has parked.
func TestSpinReaderStream(t *testing.T) {
	sc, cc := tcpPair(t)
	var busy atomic.Int32
	busy.Store(1)
	s := newTestSpinReader(t, sc, &busy)
	s.window = 10 * time.Second // a spin lasts until the data comes
	spun := make(chan struct{}, 1)
	s.onSpin = func() {
		select {
		case spun <- struct{}{}:
		default:
		}
	}
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	const chunk, spinChunks = 1024, 8
	spinEnd, bulkEnd := spinChunks*chunk, len(want)-chunk

	done := make(chan streamResult, 1)
	go func() { done <- readStream(s, spinEnd, bulkEnd) }()

	for i := range spinChunks {
		select {
		case <-spun:
		case <-time.After(10 * time.Second):
			t.Fatalf("chunk %d: the reader never spun on the empty socket", i)
		}
		cc.Write(want[i*chunk : (i+1)*chunk])
	}
	cc.Write(want[spinEnd:bulkEnd])
	testkit.WaitFor(t, 10*time.Second, "the reader to give up spinning and park", func() bool { return s.stats.SpinsParked.Load() > 0 })
	cc.Write(want[bulkEnd:])
	cc.CloseWrite()
	var r streamResult
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not reach EOF")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !bytes.Equal(r.got, want) {
		t.Fatalf("read %d bytes, not the %d sent", len(r.got), len(want))
	}
	if r.found != spinChunks || r.parked != 0 {
		t.Fatalf("after the chunks sent to a spinning reader: %d spins found data, %d parked; want %d and 0", r.found, r.parked, spinChunks)
	}
	if p := s.stats.SpinsParked.Load(); p != 1 {
		t.Fatalf("%d spins parked, want 1: the one before the last chunk", p)
	}
	if f := s.stats.SpinsFound.Load(); f != r.bulkFound {
		t.Fatalf("%d spins found data, %d before the last chunk: the read that parked was counted as found too", f, r.bulkFound)
	}
}

// streamResult is what readStream read, and the spin counts it saw.
type streamResult struct {
	got           []byte
	err           error
	found, parked uint64 // once the spun-for chunks are read
	bulkFound     uint64 // once the bulk is read
}

// readStream reads s to EOF, noting the spin counts once spinEnd bytes are
// read, and once bulkEnd are, when it shortens the spin window: the next
// wait spins, finds nothing, and parks.
func readStream(s *spinReader, spinEnd, bulkEnd int) streamResult {
	var r streamResult
	buf := make([]byte, 64<<10)
	seen := false
	for {
		n, err := s.Read(buf)
		r.got = append(r.got, buf[:n]...)
		if !seen && len(r.got) >= spinEnd {
			seen = true
			r.found, r.parked = s.stats.SpinsFound.Load(), s.stats.SpinsParked.Load()
		}
		if len(r.got) == bulkEnd {
			r.bulkFound = s.stats.SpinsFound.Load()
			s.window = time.Microsecond
		}
		if err != nil {
			if err != io.EOF {
				r.err = err
			}
			return r
		}
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

// A spin that sees data arrive resets the backoff; a reader that does not
// serve its batches itself, or whose server has more connections busy than
// its limit, does not spin at all.
func TestSpinReaderWhenToSpin(t *testing.T) {
	sc, cc := tcpPair(t)
	var busy atomic.Int32
	busy.Store(1)
	s := newTestSpinReader(t, sc, &busy)
	s.window = 10 * time.Second // long enough to see the write below
	s.backoff = 8
	// The byte is sent once the read spins on the empty socket: sent
	// earlier, it would be there at once and no spin would find it.
	s.onSpin = func() { cc.Write([]byte("x")) }
	sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Read(make([]byte, 1)); err != nil {
		t.Fatalf("%v: the read never spun", err)
	}
	sc.SetReadDeadline(time.Time{})
	if s.backoff != 0 || s.stats.SpinsFound.Load() != 1 {
		t.Fatalf("backoff %d, %d spins counted as found after a spin that found data; want 0 and 1", s.backoff, s.stats.SpinsFound.Load())
	}

	if !s.spinning() {
		t.Fatal("a reader serving its batch itself, with one busy connection, does not spin")
	}
	busy.Store(2)
	if s.spinning() {
		t.Fatal("spins with more busy connections than its limit")
	}
	busy.Store(1)
	s.readerServes = false
	if s.spinning() {
		t.Fatal("spins while the reader does not serve its batch itself")
	}
	s.readerServes, s.skip = true, 3
	if s.spinning() || s.skip != 2 {
		t.Fatalf("spins while backing off (skip now %d)", s.skip)
	}
}
