package targets

import (
	"context"
	"sync"
	"time"
)

// The delay target holds requests back in a delayQueue: each waiting
// request parks its own goroutine (the NBD server's, which has nothing else
// to do) on a channel, and one timer per queue, re-armed for the earliest
// deadline, releases whatever has expired when it fires. There is no
// goroutine of the queue's own: time.AfterFunc runs the release only when
// a deadline passes, so an idle delay target costs no goroutine and no
// timer (a table can hold a million of them), and a busy one costs one
// timer event per batch of expiring requests rather than one runtime timer
// per request, as a sleep per request would.
//
// Requests of one class all wait the same time, so a class's FIFO is also
// its deadline order: releasing from the head is dm's first-in first-out,
// and the earliest deadline of the queue is among the three heads.

// delayClassID is one of dm-delay's three request classes.
type delayClassID uint8

const (
	delayRead delayClassID = iota
	delayWrite
	delayFlush
	numDelayClasses
)

// delayClock is the queue's source of time; tests drive a fake one.
type delayClock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) delayTimer
}

// delayTimer is the part of *time.Timer the queue uses.
type delayTimer interface {
	Reset(d time.Duration) bool
	Stop() bool
}

type realDelayClock struct{}

func (realDelayClock) Now() time.Time { return time.Now() }

func (realDelayClock) AfterFunc(d time.Duration, f func()) delayTimer { return time.AfterFunc(d, f) }

// waiter is one held request, linked into its class's FIFO while queued.
type waiter struct {
	prev, next *waiter
	deadline   time.Time
	queued     bool
	// release gets exactly one token when the waiter leaves the queue
	// other than by its own cancellation; capacity 1, so the releaser
	// never blocks and the waiter can be reused once it took the token.
	release chan struct{}
}

var waiterPool = sync.Pool{New: func() any { return &waiter{release: make(chan struct{}, 1)} }}

// waitList is a FIFO of waiters with removal from the middle (a cancelled
// request leaves at once, not when its deadline would have come).
type waitList struct {
	head, tail *waiter
	n          int
}

func (l *waitList) push(w *waiter) {
	w.prev, w.next, w.queued = l.tail, nil, true
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
	l.n++
}

func (l *waitList) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	l.n--
}

// delayQueue holds requests until their deadline, or until delaying stops
// (presuspend, destroy). The zero value is not ready: use newDelayQueue.
type delayQueue struct {
	clk delayClock

	mu       sync.Mutex
	classes  [numDelayClasses]waitList
	delaying bool       // dm's may_delay: off from presuspend to resume
	timer    delayTimer // nil until the first request waits
	armed    time.Time  // the timer's deadline; zero when it is not armed
}

func newDelayQueue(clk delayClock) *delayQueue {
	return &delayQueue{clk: clk, delaying: true}
}

// wait holds the caller for d in class c, unless d is zero or delaying is
// off; held says whether it did, and for how long. A ctx that ends first
// takes the request out of the queue and wait returns ctx's error.
func (q *delayQueue) wait(ctx context.Context, c delayClassID, d time.Duration) (held bool, waited time.Duration, err error) {
	if d <= 0 {
		return false, 0, nil
	}
	q.mu.Lock()
	if !q.delaying {
		q.mu.Unlock()
		return false, 0, nil
	}
	w := waiterPool.Get().(*waiter)
	start := q.clk.Now()
	w.deadline = start.Add(d)
	q.classes[c].push(w)
	q.arm(w.deadline, start)
	q.mu.Unlock()

	select {
	case <-w.release:
	case <-ctx.Done():
		err = ctx.Err()
		q.mu.Lock()
		taken := !w.queued
		if !taken {
			q.classes[c].remove(w)
		}
		q.mu.Unlock()
		if taken {
			<-w.release // released as ctx ended: the token is there
		}
	}
	waited = q.clk.Now().Sub(start)
	waiterPool.Put(w)
	return true, waited, err
}

// arm makes the timer fire at deadline if nothing earlier is pending.
// Called with mu held.
func (q *delayQueue) arm(deadline, now time.Time) {
	if !q.armed.IsZero() && !deadline.Before(q.armed) {
		return
	}
	q.armed = deadline
	if q.timer == nil {
		q.timer = q.clk.AfterFunc(deadline.Sub(now), q.fire)
		return
	}
	q.timer.Reset(deadline.Sub(now))
}

// fire releases every expired request, class by class in arrival order,
// and re-arms the timer for the earliest one left. A late or stale firing
// does no harm: it recomputes everything from the queue.
func (q *delayQueue) fire() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clk.Now()
	q.armed = time.Time{}
	var next time.Time
	for c := range q.classes {
		l := &q.classes[c]
		for l.head != nil && !l.head.deadline.After(now) {
			q.releaseHead(l)
		}
		if l.head != nil && (next.IsZero() || l.head.deadline.Before(next)) {
			next = l.head.deadline
		}
	}
	if !next.IsZero() {
		q.arm(next, now)
	}
}

// releaseHead lets the first waiter of l go. Called with mu held.
func (q *delayQueue) releaseHead(l *waitList) {
	w := l.head
	l.remove(w)
	w.release <- struct{}{}
}

// stop turns delaying off and releases every waiting request at once
// (dm's presuspend); the timer is stopped, having nothing left to do.
func (q *delayQueue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.delaying = false
	for c := range q.classes {
		for q.classes[c].head != nil {
			q.releaseHead(&q.classes[c])
		}
	}
	if q.timer != nil {
		q.timer.Stop()
	}
	q.armed = time.Time{}
}

// start turns delaying back on (dm's resume).
func (q *delayQueue) start() {
	q.mu.Lock()
	q.delaying = true
	q.mu.Unlock()
}

// waiting is how many requests of each class are held now.
func (q *delayQueue) waiting() (n [numDelayClasses]int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for c := range q.classes {
		n[c] = q.classes[c].n
	}
	return n
}
