package nbdserver

import (
	"bytes"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// blockingExport serves export "a" whose reads at offset 0 wait until
// m.block is closed, and connects a client to it.
func blockingExport(t *testing.T) (*memExport, *Server, *client) {
	m := newMem(1 << 20)
	m.blockAt = 0
	m.block = make(chan struct{})
	s, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	return m, s, c
}

// Replies come back in completion order, not request order.
func TestRepliesOutOfOrder(t *testing.T) {
	m, _, c := blockingExport(t)
	c.request(cmdRead, 0, 1, 0, 512, nil) // blocks
	c.request(cmdWrite, 0, 2, 4096, 512, make([]byte, 512))
	if e, ck := c.simple(); e != 0 || ck != 2 {
		t.Fatalf("first reply: errno %d cookie %d, want the write (2)", e, ck)
	}
	close(m.block)
	if e, ck := c.simple(); e != 0 || ck != 1 {
		t.Fatalf("second reply: errno %d cookie %d", e, ck)
	}
	c.read(512)
}

// Requests that arrive together are served as one batch by one goroutine.
// When the first blocks, the stall watch hands the rest to goroutines of
// their own and another worker goes on reading: they are answered while it
// still blocks.
func TestStalledBatchIsRescued(t *testing.T) {
	m, s, c := blockingExport(t)
	b := requestBytes(nil, cmdRead, 0, 100, 0, 512, nil) // blocks
	for i := uint64(1); i <= 8; i++ {
		b = requestBytes(b, cmdWrite, 0, i, i*4096, 512, bytes.Repeat([]byte{byte(i)}, 512))
	}
	c.write(b)
	for range 8 {
		if e, ck := c.simple(); e != 0 || ck < 1 || ck > 8 {
			t.Fatalf("reply: errno %d cookie %d, want a write (1-8)", e, ck)
		}
	}
	// Requests sent after the stall are read and served too.
	c.request(cmdRead, 0, 9, 3*4096, 512, nil)
	if e, ck := c.simple(); e != 0 || ck != 9 {
		t.Fatalf("read after the stall: errno %d cookie %d", e, ck)
	}
	if got := c.read(512); !bytes.Equal(got, bytes.Repeat([]byte{3}, 512)) {
		t.Fatalf("read back % x...", got[:8])
	}
	if s.Stats().Stalls.Load() == 0 {
		t.Fatal("no stall counted")
	}
	close(m.block)
	if e, ck := c.simple(); e != 0 || ck != 100 {
		t.Fatalf("blocked read: errno %d cookie %d", e, ck)
	}
	c.read(512)
}

// A write's payload is served from the read buffer without a copy. When
// that write stalls and another worker reads on (well past the buffer's
// size), the stalled write must still get its own data, not bytes read
// later into the same memory.
func TestStalledWriteKeepsItsPayload(t *testing.T) {
	m, s, c := blockingExport(t)
	want := bytes.Repeat([]byte{0xa5}, 4096)
	c.request(cmdWrite, 0, 100, 0, 4096, want) // blocks
	testkit.WaitFor(t, 10*time.Second, "a stall", func() bool { return s.Stats().Stalls.Load() > 0 })
	const n = 40 // 40 x 64 KiB: ten times the read buffer
	var b []byte
	for i := uint64(1); i <= n; i++ {
		b = requestBytes(b, cmdWrite, 0, i, 4096+(i%8)*65536, 65536, bytes.Repeat([]byte{byte(i)}, 65536))
	}
	c.write(b)
	for range n {
		if e, ck := c.simple(); e != 0 || ck < 1 || ck > n {
			t.Fatalf("reply: errno %d cookie %d", e, ck)
		}
	}
	close(m.block)
	if e, ck := c.simple(); e != 0 || ck != 100 {
		t.Fatalf("stalled write: errno %d cookie %d", e, ck)
	}
	c.request(cmdRead, 0, 101, 0, 4096, nil)
	if e, _ := c.simple(); e != 0 {
		t.Fatalf("read back: errno %d", e)
	}
	if got := c.read(4096); !bytes.Equal(got, want) {
		t.Fatalf("stalled write stored % x..., want a5 a5...", got[:8])
	}
}

// A request held far longer than the watch's tick (a delay target's) is
// one stall: the watch rescues its batch once, and then stops ticking
// until another batch begins. It used to rescue a reader-serves batch on
// every tick, starting one more reader each time (80 in 100 ms), and to
// tick for as long as any request was held.
func TestHeldRequestIsOneStall(t *testing.T) {
	m, s, c := blockingExport(t)
	c.request(cmdRead, 0, 1, 0, 512, nil) // held until m.block closes
	testkit.WaitFor(t, 10*time.Second, "a stall", func() bool { return s.Stats().Stalls.Load() > 0 })
	testkit.WaitFor(t, 10*time.Second, "the stall watch to stop", func() bool { return !s.stalls.running.Load() })
	if n := s.Stats().Stalls.Load(); n != 1 {
		t.Fatalf("%d stalls counted for one held request", n)
	}
	c.request(cmdRead, 0, 2, 4096, 512, nil) // served while the first is held
	if e, ck := c.simple(); e != 0 || ck != 2 {
		t.Fatalf("read beside the held one: errno %d cookie %d", e, ck)
	}
	c.read(512)
	close(m.block)
	if e, ck := c.simple(); e != 0 || ck != 1 {
		t.Fatalf("held read: errno %d cookie %d", e, ck)
	}
	c.read(512)
}

// A backend slower than the stall watch's tick (every write takes 3 ms)
// makes every batch a "stall". Once serving is spread over workers, a
// batch of one has nothing to hand out and a reader already exists, so
// the watch must leave it alone: it used to start another worker each
// time, which never left (over 700 goroutines a second under fio).
func TestSlowBackendDoesNotPileUpWorkers(t *testing.T) {
	m := newMem(1 << 20)
	m.delay = 3 * time.Millisecond
	_, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	const depth, total = 4, 80
	p := make([]byte, 4096)
	for i := range uint64(depth) {
		c.request(cmdWrite, 0, i, i*4096, 4096, p)
	}
	var base int
	for i := uint64(depth); i < total+depth; i++ {
		if e, _ := c.simple(); e != 0 {
			t.Fatalf("write: errno %d", e)
		}
		if i == 3*depth {
			base = runtime.NumGoroutine() // settled in spreading mode
		}
		if i < total {
			c.request(cmdWrite, 0, i, (i%64)*4096, 4096, p)
		}
	}
	if n := runtime.NumGoroutine(); n > base+2*depth {
		t.Fatalf("%d goroutines after %d slow writes, %d after the first %d: workers pile up", n, total, base, 3*depth)
	}
}

// A request past either bound waits in acquire, and is let in once a
// release makes room for it, not before: not while a release leaves too
// little room.
func TestBudgetBoundsInFlight(t *testing.T) {
	b := budget{maxN: 3, maxBytes: 1000}
	got := make(chan bool, 1)
	// asleep waits until a reader has gone to wait on the budget's cond
	// for the nth time: it is then blocked in acquire, not admitted, and
	// only a release or close wakes it.
	asleep := func(n int, why string) {
		t.Helper()
		testkit.WaitFor(t, 10*time.Second, "a reader asleep in acquire "+why, func() bool {
			select {
			case ok := <-got:
				t.Fatalf("admitted (%v) %s", ok, why)
			default:
			}
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.sleeps == n
		})
	}
	admitted := func(why string) {
		t.Helper()
		select {
		case ok := <-got:
			if !ok {
				t.Fatalf("acquire failed %s", why)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("not admitted %s", why)
		}
	}
	if !b.acquire(600) || !b.acquire(0) || !b.acquire(0) {
		t.Fatal("acquire failed")
	}
	go func() { got <- b.acquire(300) }() // its bytes fit, the count does not
	asleep(1, "past the count bound")
	b.release(0)
	admitted("once the count fits")

	b.release(0)                          // 2 requests, 900 bytes
	go func() { got <- b.acquire(500) }() // the count fits, its bytes do not
	asleep(2, "past the byte bound")
	b.release(300) // 600 bytes left: still no room for 500
	asleep(3, "after a release that left too little room")
	b.release(600) // room at last
	admitted("once its bytes fit")
	if b.n != 1 || b.bytes != 500 {
		t.Fatalf("budget holds %d requests, %d bytes; want 1, 500", b.n, b.bytes)
	}
	b.close()
	if b.acquire(0) {
		t.Fatal("acquire after close")
	}
}

// The watch's tick doubles while nothing stalls, up to maxStallTick, and
// is back to stallAfter after a rescue: a stall soon after a calm spell is
// found within two ticks of maxStallTick, and one after another stall
// within two of stallAfter.
func TestStallTickBacksOff(t *testing.T) {
	var got []time.Duration
	for tick, i := stallAfter, 0; i < 4; i++ {
		tick = nextTick(tick, false)
		got = append(got, tick)
	}
	want := []time.Duration{2 * stallAfter, 4 * stallAfter, maxStallTick, maxStallTick}
	if !slices.Equal(got, want) {
		t.Fatalf("ticks without a stall: %v, want %v", got, want)
	}
	if tick := nextTick(maxStallTick, true); tick != stallAfter {
		t.Fatalf("tick after a rescue: %v, want %v", tick, stallAfter)
	}
}
