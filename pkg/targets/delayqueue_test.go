package targets

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// fakeClock is a delayClock that moves only when Advance says: timers fire
// inside Advance, in the caller's goroutine, so a test knows exactly what
// has been released when Advance returns.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c      *fakeClock
	at     time.Time
	f      func()
	active bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1e9, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) delayTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f, active: true}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.at, t.active = t.c.now.Add(d), true
	return was
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

// Advance moves the clock by d and runs the timers due, as often as they
// are re-armed within the new time.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	for range 1000 {
		f := c.due()
		if f == nil {
			return
		}
		f()
	}
	panic("fakeClock: timers keep firing")
}

// due disarms and returns the first timer due, or nil.
func (c *fakeClock) due() func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if t.active && !t.at.After(c.now) {
			t.active = false
			return t.f
		}
	}
	return nil
}

// armed counts the timers that will fire.
func (c *fakeClock) armed() (n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if t.active {
			n++
		}
	}
	return n
}

// queueWaiter is one request's wait in its own goroutine; done gets its
// result.
type queueWaiter struct {
	done chan queueResult
}

type queueResult struct {
	held bool
	for_ time.Duration
	err  error
}

// startWait starts a wait on q and returns once it is queued (or, when it
// will not be held, has returned).
func startWait(t *testing.T, ctx context.Context, q *delayQueue, c delayClassID, d time.Duration) queueWaiter {
	t.Helper()
	before := q.waiting()[c]
	w := queueWaiter{done: make(chan queueResult, 1)}
	go func() {
		held, waited, err := q.wait(ctx, c, d)
		w.done <- queueResult{held, waited, err}
	}()
	testkit.WaitFor(t, 10*time.Second, "request queued", func() bool {
		return q.waiting()[c] > before || len(w.done) > 0
	})
	return w
}

// result waits for the request's end.
func (w queueWaiter) result(t *testing.T) queueResult {
	t.Helper()
	select {
	case r := <-w.done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("request not released")
		return queueResult{}
	}
}

func TestDelayQueueReleasesInArrivalOrderAtDeadline(t *testing.T) {
	clk := newFakeClock()
	q := newDelayQueue(clk)
	ctx := context.Background()
	var ws []queueWaiter
	for range 3 {
		ws = append(ws, startWait(t, ctx, q, delayRead, 10*time.Millisecond))
		clk.Advance(time.Millisecond)
	}
	// Now 3 ms after the first arrival: the first is due in 7 ms.
	clk.Advance(6 * time.Millisecond)
	if n := q.waiting(); n[delayRead] != 3 {
		t.Fatalf("released before its deadline: waiting %v", n)
	}
	for i, w := range ws {
		clk.Advance(time.Millisecond)
		if n := q.waiting(); n[delayRead] != 2-i {
			t.Fatalf("after deadline %d: waiting %v, want %d", i, n, 2-i)
		}
		r := w.result(t) // the i-th arrival, and no other, was released
		if !r.held || r.err != nil || r.for_ != 10*time.Millisecond {
			t.Fatalf("request %d: %+v, want held 10ms", i, r)
		}
	}
	if clk.armed() != 0 || len(clk.timers) != 1 {
		t.Fatalf("timers: %d made, %d armed; want 1 made, none armed", len(clk.timers), clk.armed())
	}
}

func TestDelayQueueTimerFollowsTheEarliestClass(t *testing.T) {
	clk := newFakeClock()
	q := newDelayQueue(clk)
	ctx := context.Background()
	slow := startWait(t, ctx, q, delayWrite, time.Second)
	fast := startWait(t, ctx, q, delayRead, 10*time.Millisecond)
	clk.Advance(10 * time.Millisecond)
	if r := fast.result(t); !r.held || r.err != nil {
		t.Fatalf("fast read: %+v", r)
	}
	if n := q.waiting(); n != [numDelayClasses]int{0, 1, 0} {
		t.Fatalf("waiting %v, want the write only", n)
	}
	clk.Advance(time.Second - 10*time.Millisecond - 1)
	if n := q.waiting(); n[delayWrite] != 1 {
		t.Fatal("write released early")
	}
	clk.Advance(1)
	if r := slow.result(t); !r.held || r.for_ != time.Second {
		t.Fatalf("slow write: %+v", r)
	}
}

func TestDelayQueueCancelLeavesTheQueue(t *testing.T) {
	clk := newFakeClock()
	q := newDelayQueue(clk)
	ctx, cancel := context.WithCancel(context.Background())
	a := startWait(t, context.Background(), q, delayRead, time.Second)
	b := startWait(t, ctx, q, delayRead, time.Second)
	c := startWait(t, context.Background(), q, delayRead, time.Second)
	cancel()
	if r := b.result(t); !errors.Is(r.err, context.Canceled) || !r.held {
		t.Fatalf("cancelled request: %+v, want held and context.Canceled", r)
	}
	if n := q.waiting(); n[delayRead] != 2 {
		t.Fatalf("waiting %v after cancel, want 2", n)
	}
	clk.Advance(time.Second)
	for _, w := range []queueWaiter{a, c} {
		if r := w.result(t); r.err != nil {
			t.Fatalf("neighbour of the cancelled request: %+v", r)
		}
	}
}

func TestDelayQueueStopReleasesAllAndStartDelaysAgain(t *testing.T) {
	clk := newFakeClock()
	q := newDelayQueue(clk)
	ctx := context.Background()
	var ws []queueWaiter
	for c := range numDelayClasses {
		ws = append(ws, startWait(t, ctx, q, c, time.Hour))
	}
	q.stop()
	for i, w := range ws {
		if r := w.result(t); !r.held || r.err != nil || r.for_ != 0 {
			t.Fatalf("class %d after stop: %+v, want released at once", i, r)
		}
	}
	if clk.armed() != 0 {
		t.Fatal("timer still armed after stop")
	}
	if r := startWait(t, ctx, q, delayRead, time.Hour).result(t); r.held {
		t.Fatal("held while stopped")
	}
	q.start()
	w := startWait(t, ctx, q, delayRead, time.Hour)
	if n := q.waiting(); n[delayRead] != 1 {
		t.Fatalf("not held after start: waiting %v", n)
	}
	clk.Advance(time.Hour)
	if r := w.result(t); !r.held || r.for_ != time.Hour {
		t.Fatalf("after start: %+v", r)
	}
}

func TestDelayQueueZeroDelayPassesThrough(t *testing.T) {
	q := newDelayQueue(newFakeClock())
	if held, _, err := q.wait(context.Background(), delayWrite, 0); held || err != nil {
		t.Fatalf("zero delay: held=%v err=%v", held, err)
	}
}
