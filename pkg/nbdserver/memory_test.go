package nbdserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// When the bytes in flight fall to zero after rising past burstBytes since
// the last release, memory is given back, once; not while a burst is on,
// and not after small ones. A burst that ends in small zero crossings is
// still released after the last.
func TestMemoryReleaseAfterBurst(t *testing.T) {
	freed := make(chan struct{}, 4)
	var runs, waits atomic.Uint64
	var big atomic.Int64
	m := &memReleaser{runs: &runs, unpooled: &big, free: func() { freed <- struct{}{} }}
	g := newSharedBudget(1<<30, &waits, m.burstEnded)
	m.inFlight, m.peak = &g.bytes, &g.peak
	noRelease := func(when string) {
		t.Helper()
		m.mu.Lock()
		pending := m.pending != nil
		m.mu.Unlock()
		if pending || runs.Load() != 0 {
			t.Fatalf("a release %s", when)
		}
	}
	g.tryAcquire(burstBytes / 2)
	g.release(burstBytes / 2)
	noRelease("after a small burst")
	g.tryAcquire(burstBytes)
	g.tryAcquire(1)
	g.release(burstBytes)
	noRelease("with bytes still in flight")
	g.release(1) // the burst's last zero crossing is a small one
	select {
	case <-freed:
	case <-time.After(10 * time.Second):
		t.Fatal("no release after a burst")
	}
	testkit.WaitFor(t, 10*time.Second, "the release to be counted", func() bool { return runs.Load() == 1 })
	if p := g.peak.Load(); p != 0 {
		t.Fatalf("peak %d after the release, want 0", p)
	}

	// A small burst that made a large unpooled buffer is released too.
	big.Add(unpooledBurst)
	g.tryAcquire(1)
	g.release(1)
	select {
	case <-freed:
	case <-time.After(10 * time.Second):
		t.Fatal("no release after an unpooled buffer")
	}
	testkit.WaitFor(t, 10*time.Second, "the second release to be counted", func() bool { return runs.Load() == 2 })
}

// extentsCounter is a memExport that counts the block-status replies it
// has built (its Extents calls that have returned).
type extentsCounter struct {
	*memExport
	built atomic.Int64
}

func (e *extentsCounter) Extents(ctx context.Context, off, n int64, emit func(int64, uint32) bool) error {
	defer e.built.Add(1)
	return e.memExport.Extents(ctx, off, n, emit)
}

// statusHog is a client that sends block statuses of full replies
// (maxExtents descriptors each) over a net.Pipe, which has no socket
// buffer: what it leaves unread stays in the server. The server's
// in-flight bounds (all one: the connection's, the server's) are bound.
type statusHog struct {
	t     *testing.T
	bound int64
	m     *extentsCounter
	srv   *Server
	c     *conn
	wc    *client
}

// full is what the descriptors of one full reply take, at the least.
const full = int64(8 * maxExtents)

func newStatusHog(t *testing.T, bound int64) *statusHog {
	m := &extentsCounter{memExport: newMem(8 << 20)}
	m.as = m
	for b := int64(0); b < 2048; b += 2 {
		m.holes[b] = true // a 4 KiB run of each kind in turn: full replies
	}
	srv := &Server{Exports: testExports{"a": m.memExport}, Log: discardLog(),
		MaxInFlightBytes: bound, MaxInFlightBytesTotal: bound, MaxInFlightBytesPerExport: -1}
	srv.init()
	server, cl := net.Pipe()
	t.Cleanup(func() { cl.Close() })
	cl.SetDeadline(time.Now().Add(20 * time.Second))
	h := &statusHog{t: t, bound: bound, m: m, srv: srv, c: newConn(srv, server), wc: &client{t: t, c: cl, br: bufio.NewReader(cl)}}
	// Requests are served as slow ones are, each handed to a worker while
	// the reader reads on, so that only the budget stops the reading,
	// whatever the tuner picks: a reader serving its own batch would stop
	// at its first unwritten reply. The workers' measures bring the
	// service time down again, but only after some fifty requests: more
	// than fill the bound.
	h.c.serviceNs.Store(int64(time.Second))
	go h.c.serve()
	h.wc.connect("a", true)
	return h
}

// send sends n block statuses (cookies 0 to n-1) in one write, which
// returns (on the channel) once the server has read them all.
func (h *statusHog) send(n uint64) chan error {
	var b []byte
	for k := range n {
		b = requestBytes(b, cmdBlockStatus, 0, k, 0, 8<<20, nil)
	}
	sent := make(chan error, 1)
	go func() { _, err := h.wc.c.Write(b); sent <- err }()
	return sent
}

// held waits until the server can let no more requests in: the budget is
// full, and every request it let in has its reply built (none written:
// the client reads nothing). Meanwhile, what the built replies hold must
// stay within the bound and be seen in the in-flight gauge.
func (h *statusHog) held() {
	h.t.Helper()
	testkit.WaitForValue(h.t, 10*time.Second, "the in-flight bound full of block-status replies", func() (bool, string) {
		built := h.m.built.Load()
		gauge := h.srv.Gauges().InFlightBytes // after built: a request's charge comes first
		if built*full > gauge || built*full > h.bound {
			h.t.Fatalf("%d unread block-status replies hold at least %d KiB; the in-flight gauge says %d KiB, the bound is %d KiB",
				built, built*full>>10, gauge>>10, h.bound>>10)
		}
		b := &h.c.budget
		b.mu.Lock()
		admitted, bytes := b.n, b.bytes
		b.mu.Unlock()
		return bytes+full > h.bound && int64(admitted) == built,
			fmt.Sprintf("%d replies built, %d requests in, %d bytes charged", built, admitted, bytes)
	})
}

// A block-status reply holds its descriptors until it is written, and is
// charged to the in-flight bounds for them as a read is for its data. A
// client that sends block statuses and never reads a reply holds at most
// the bound with them, all of it in the InFlightBytes gauge (they were
// outside both: 128 replies of 16 KiB a connection). The charge comes
// back as the replies are written, error replies too, and when the
// connection is killed with replies unwritten.
func TestBlockStatusRepliesInFlightBound(t *testing.T) {
	const n = 128
	h := newStatusHog(t, 64<<10)
	sent := h.send(n)
	h.held()
	// Read them all (in any order): the charge comes back as they are
	// written.
	seen := map[uint64]bool{}
	for range n {
		ch := h.wc.chunk()
		if ch.typ != chunkBlockStatus || ch.cookie >= n || seen[ch.cookie] || int64(len(ch.payload)) != 4+full ||
			binary.BigEndian.Uint32(ch.payload) != metaAllocationID || binary.BigEndian.Uint32(ch.payload[8:]) != 3 {
			t.Fatalf("reply: chunk type %d cookie %d (seen %v), %d bytes", ch.typ, ch.cookie, seen[ch.cookie], len(ch.payload))
		}
		seen[ch.cookie] = true
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	h.wc.request(cmdBlockStatus, 0, n, 8<<20-4096, 8192, nil) // past the end: an error reply
	if ch := h.wc.chunk(); ch.typ != chunkError {
		t.Fatalf("block status past the end: chunk type %d", ch.typ)
	}
	testkit.WaitFor(t, 10*time.Second, "the replies' charge back", func() bool { return h.srv.Gauges().InFlightBytes == 0 })
	// Fill the bound on a new connection, and kill it with them unwritten.
	h = newStatusHog(t, 64<<10)
	sent = h.send(n)
	h.held()
	h.c.kill()
	<-h.c.done
	<-sent
	if g := h.srv.Gauges().InFlightBytes; g != 0 {
		t.Fatalf("a killed connection's unwritten replies still charge %d bytes", g)
	}
}
