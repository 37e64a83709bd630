package nbdserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// legExport is a memExport with an asynchronous path that completes
// every request on one goroutine, as a remote leg's reply reader does
// for all the connections that use it.
type legExport struct {
	*memExport
	jobs   chan func()
	gate   atomic.Pointer[chan struct{}] // when set, the leg waits for it before each job
	refuse atomic.Bool                   // refuse the asynchronous path
	done   atomic.Int64                  // completions called
}

var _ AsyncExport = (*legExport)(nil)

func newLeg(t *testing.T, m *memExport) *legExport {
	l := &legExport{memExport: m, jobs: make(chan func(), 4096)}
	m.as = l
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			select {
			case job := <-l.jobs:
				if g := l.gate.Load(); g != nil {
					<-*g
				}
				job()
			case <-stop:
				return
			}
		}
	}()
	return l
}

func (l *legExport) MayAsync() bool { return !l.refuse.Load() }

func (l *legExport) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	if l.refuse.Load() {
		return false
	}
	l.jobs <- func() { err := l.memExport.ReadAt(ctx, p, off); l.done.Add(1); done(err) }
	return true
}

func (l *legExport) WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	if l.refuse.Load() {
		return false
	}
	l.jobs <- func() { err := l.memExport.WriteAt(ctx, p, off); l.done.Add(1); done(err) }
	return true
}

// TestAsyncServed: reads and writes go through the export's asynchronous
// path (counted), with simple and structured replies and an error reply;
// FUA writes and a refusing export are served the usual way, alike.
func TestAsyncServed(t *testing.T) {
	m := newMem(1 << 20)
	m.failOn = 65536
	leg := newLeg(t, m)
	s, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	data := bytes.Repeat([]byte{9}, 4096)
	c.request(cmdWrite, 0, 1, 4096, 4096, data)
	if errno, cookie := c.simple(); errno != 0 || cookie != 1 {
		t.Fatalf("write: errno %d cookie %d", errno, cookie)
	}
	c.request(cmdRead, 0, 2, 4096, 4096, nil)
	if errno, _ := c.simple(); errno != 0 || !bytes.Equal(c.read(4096), data) {
		t.Fatalf("read: errno %d or other data", errno)
	}
	c.request(cmdRead, 0, 3, 65536, 512, nil)
	if errno, _ := c.simple(); errno != errIO {
		t.Fatalf("failed read: errno %d, want EIO", errno)
	}
	if n := s.Stats().AsyncRequests.Load(); n != 3 || leg.done.Load() != 3 {
		t.Fatalf("%d requests taken asynchronously, %d completed; want 3", n, leg.done.Load())
	}
	c.request(cmdWrite, cmdFlagFUA, 4, 0, 512, make([]byte, 512))
	if errno, _ := c.simple(); errno != 0 || s.Stats().AsyncRequests.Load() != 3 {
		t.Fatalf("FUA write: errno %d, async count %d (want the usual path)", errno, s.Stats().AsyncRequests.Load())
	}
	leg.refuse.Store(true)
	c.request(cmdRead, 0, 5, 4096, 4096, nil)
	if errno, _ := c.simple(); errno != 0 || !bytes.Equal(c.read(4096), data) || s.Stats().AsyncRequests.Load() != 3 {
		t.Fatal("a refused request was not served the usual way")
	}
	leg.refuse.Store(false)

	st := dial(t, sock)
	st.connect("a", true)
	st.request(cmdRead, 0, 6, 4096, 4096, nil)
	ch := st.chunk()
	if ch.typ != chunkOffsetData || ch.flags&chunkFlagDone == 0 || !bytes.Equal(ch.payload[8:], data) ||
		binary.BigEndian.Uint64(ch.payload) != 4096 {
		t.Fatalf("structured read: type %d flags %d", ch.typ, ch.flags)
	}
	st.request(cmdRead, 0, 7, 65536, 512, nil)
	if ch := st.chunk(); ch.typ != chunkError || binary.BigEndian.Uint32(ch.payload) != errIO {
		t.Fatalf("structured failed read: type %d", ch.typ)
	}
	if n := s.Stats().AsyncRequests.Load(); n != 5 {
		t.Fatalf("%d requests taken asynchronously, want 5", n)
	}
}

// TestAsyncUnreadClientDoesNotStallLeg: a client that sends reads and
// does not read the replies fills its socket; completions on the shared
// leg go on (they only queue what the socket does not take), and another
// client's reads are answered. Then the first client reads, and gets every
// reply whole.
func TestAsyncUnreadClientDoesNotStallLeg(t *testing.T) {
	m := newMem(1 << 20)
	for i := range m.data {
		m.data[i] = byte(i / 4096)
	}
	leg := newLeg(t, m)
	_, sock := startServer(t, testExports{"a": m}, func(s *Server) { s.WriteTimeout = -1 })
	deaf := dial(t, sock)
	deaf.connect("a", false)
	const n, size = 128, 128 << 10 // 16 MiB: more than the socket buffers hold
	var reqs []byte
	for i := range n {
		reqs = requestBytes(reqs, cmdRead, 0, uint64(i), 0, size, nil)
	}
	deaf.write(reqs)
	testkit.WaitFor(t, 10*time.Second, "every read of the deaf client completed on the leg",
		func() bool { return leg.done.Load() == n })
	c := dial(t, sock)
	c.connect("a", false)
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	for i := range 8 {
		c.request(cmdRead, 0, uint64(i), 0, 4096, nil)
		if errno, _ := c.simple(); errno != 0 {
			t.Fatalf("read: errno %d", errno)
		}
		c.read(4096)
	}
	// Once it reads, the deaf client gets every reply whole: what a
	// completion's write left unsent (the carry) went out first.
	seen := map[uint64]bool{}
	for range n {
		errno, cookie := deaf.simple()
		if errno != 0 || seen[cookie] || !bytes.Equal(deaf.read(size), m.data[:size]) {
			t.Fatalf("reply %d: errno %d, seen before %v, or other data", cookie, errno, seen[cookie])
		}
		seen[cookie] = true
	}
}

// TestAsyncCloseInFlight closes and kills connections whose asynchronous
// requests the leg holds: each connection waits for its requests before
// it gives back its export, and everything is given back once they
// complete (the race detector watches the buffers).
func TestAsyncCloseInFlight(t *testing.T) {
	m := newMem(1 << 20)
	leg := newLeg(t, m)
	gate := make(chan struct{})
	leg.gate.Store(&gate)
	s, sock := startServer(t, testExports{"a": m}, nil)
	for round, kill := range []bool{false, true} {
		c := dial(t, sock)
		c.connect("a", false)
		var reqs []byte
		for i := range 16 {
			reqs = requestBytes(reqs, cmdRead, 0, uint64(2*i), uint64(i)*4096, 4096, nil)
			reqs = requestBytes(reqs, cmdWrite, 0, uint64(2*i+1), uint64(i)*4096, 4096, bytes.Repeat([]byte{byte(i)}, 4096))
		}
		c.write(reqs)
		testkit.WaitFor(t, 10*time.Second, "32 requests taken", func() bool {
			return s.Stats().AsyncRequests.Load() == uint64(32*(round+1))
		})
		disconnected := make(chan int, 1)
		if kill {
			// Disconnect returns once the connection has ended, after
			// the gate: the socket closing says the kill came.
			go func() { disconnected <- s.Disconnect(leg) }()
			c.expectClosed()
		} else {
			c.c.Close()
			disconnected <- 0
		}
		testkit.WaitFor(t, 10*time.Second, "the leg to hold the first request", func() bool { return len(leg.jobs) == 31 })
		if m.opened.Load() != 1 {
			t.Fatalf("the export was given back with requests in flight (opened %d)", m.opened.Load())
		}
		close(gate)
		testkit.WaitFor(t, 10*time.Second, "the connection to end", func() bool { return m.opened.Load() == 0 })
		if n := <-disconnected; kill && n != 1 {
			t.Fatalf("disconnected %d connections", n)
		}
		if g := s.Gauges(); g.InFlightBytes != 0 {
			t.Fatalf("bytes in flight after the end: %d", g.InFlightBytes)
		}
		gate = make(chan struct{})
		leg.gate.Store(&gate)
	}
	close(gate)
}
