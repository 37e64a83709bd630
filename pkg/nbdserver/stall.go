package nbdserver

import (
	"sync"
	"sync/atomic"
	"time"
)

// stallAfter is how long a batch may run before its requests not yet
// started are handed to goroutines of their own and another worker starts
// reading: a request that blocks (a hung backend, a suspended device) then
// delays the others on its connection by one to two of the watch's ticks,
// not indefinitely. The tick is stallAfter after a stall and backs off to
// maxStallTick while none happens.
const stallAfter = time.Millisecond

// maxStallTick bounds the watch's back-off. While batches keep finishing,
// a 1 ms tick is a thousand goroutine wake-ups a second for nothing: on a
// loaded 2-core VM the tick cost a quarter to a third of gdm's CPU per 4 KiB
// request. With a 4 ms cap a blocked request is rescued within 8 ms.
const maxStallTick = 4 * stallAfter

// nextTick is the watch's next sleep after a scan: back to stallAfter once
// something stalled (more may follow, from the same slow backend), else
// twice the last, up to maxStallTick.
func nextTick(tick time.Duration, rescued bool) time.Duration {
	if rescued {
		return stallAfter
	}
	return min(2*tick, maxStallTick)
}

// batchRun is the batch a worker is serving, shared with the server's
// stall watch. Items are claimed through next, so each is served once, by
// the worker or by the watch (rescue).
type batchRun struct {
	c *conn // set once by the worker that owns the run
	// items is filled by the owning worker while it holds the reading
	// turn, before begin publishes them; claim hands each out once.
	items [maxBatch]work
	next  atomic.Int32 // the next item to claim (atomic)

	mu  sync.Mutex // guards n, gen, seen, handled, readerServes
	n   int        // items in the batch being served; 0 between batches
	gen uint64     // batches begun
	// seen is gen when the watch last looked, written by the watch.
	seen uint64
	// handled is set by the watch once it has dealt with this batch's
	// stall (rescued it, or found nothing to rescue): the batch then needs
	// no more looks, and keeps neither the watch ticking nor starting
	// readers. Cleared by begin.
	handled bool
	// readerServes is set while the batch's worker serves it itself, as
	// the connection's only reader: if it stalls, no one reads on.
	readerServes bool
}

// begin publishes a batch of n items (already in items) to the watch;
// readerServes says whether its worker is the only reader.
func (run *batchRun) begin(w *stallWatch, n int, readerServes bool) {
	run.mu.Lock()
	run.n = n
	run.readerServes = readerServes
	run.handled = false
	run.gen++
	run.next.Store(0)
	run.mu.Unlock()
	w.ensure()
}

// end withdraws the batch; a watch that looks later leaves it alone.
func (run *batchRun) end() {
	run.mu.Lock()
	run.n = 0
	run.mu.Unlock()
	clear(run.items[:])
}

// claim takes the next item not yet served, or returns nil.
func (run *batchRun) claim(n int) *work {
	i := int(run.next.Add(1)) - 1
	if i >= n {
		return nil
	}
	return &run.items[i]
}

// stallWatch looks at every batch being served once per tick (1 to 4 ms,
// see nextTick) and rescues those it finds still on the batch it saw last
// time. A timer per batch would be simpler, but costs a netpoller wake-up
// per batch, which showed in small writes' throughput; this is one
// wake-up per tick while batches run, and none while the server is idle:
// the watch's goroutine exits after a tick without a batch, and the next
// batch starts it again.
type stallWatch struct {
	mu      sync.Mutex             // guards runs
	runs    map[*batchRun]struct{} // every worker's run, added and removed by the worker
	running atomic.Bool            // a watch goroutine is ticking; set by ensure, cleared by watch
}

func (w *stallWatch) add(run *batchRun) {
	w.mu.Lock()
	if w.runs == nil {
		w.runs = map[*batchRun]struct{}{}
	}
	w.runs[run] = struct{}{}
	w.mu.Unlock()
}

func (w *stallWatch) remove(run *batchRun) {
	w.mu.Lock()
	delete(w.runs, run)
	w.mu.Unlock()
}

// ensure starts the watch if it is not ticking. The batch was published
// before this check and the watch re-scans after clearing running, so one
// of the two sees the other: no batch goes unwatched.
func (w *stallWatch) ensure() {
	if !w.running.Load() && w.running.CompareAndSwap(false, true) {
		go w.watch()
	}
}

func (w *stallWatch) watch() {
	tick := stallAfter
	for {
		time.Sleep(tick)
		busy, rescued := w.scan()
		tick = nextTick(tick, rescued)
		if busy {
			continue
		}
		w.running.Store(false)
		if busy, _ := w.scan(); !busy || !w.running.CompareAndSwap(false, true) {
			return
		}
	}
}

// scan rescues stalled batches and reports whether any batch is running
// or has begun since the last scan: the watch keeps ticking through the
// short gaps between batches rather than exit and be restarted each time.
// The rescues start goroutines, so they run after the locks are released.
func (w *stallWatch) scan() (busy, rescued bool) {
	var stalled []stolenBatch
	w.mu.Lock()
	for run := range w.runs {
		runBusy, r := run.look()
		busy = busy || runBusy
		if r.c != nil {
			stalled = append(stalled, r)
		}
	}
	w.mu.Unlock()
	for _, r := range stalled {
		r.c.rescue(r)
	}
	return busy, len(stalled) > 0
}

// stolenBatch is what the watch takes from a stalled batch: its requests not
// yet started, and whether its worker was the only reader. The worker
// count already includes the goroutines rescue is to start.
type stolenBatch struct {
	c            *conn
	stolen       []work
	readerServes bool
}

// look is the watch's look at run: whether it is busy (a batch not yet
// handled is being served, or one has begun since the last look), and,
// when the batch is the one seen last time (it has run for over a
// tick), what to rescue from it. Each stall is handled once: a
// batch with nothing to hand out whose worker had handed the reading on is
// left alone (the zero stolenBatch), since starting a worker for it added
// one that never left, on every slow request; and a rescued batch is not
// rescued again, which started another reader on every tick for as long as
// a reader-serves request was held (80 in 100 ms), and kept the watch
// ticking through every long-held request (a delay target's).
func (run *batchRun) look() (busy bool, r stolenBatch) {
	run.mu.Lock()
	defer run.mu.Unlock()
	open := run.n > 0 && !run.handled
	busy = open || run.gen != run.seen
	stalled := open && run.gen == run.seen
	run.seen = run.gen
	if !stalled {
		return busy, stolenBatch{}
	}
	run.handled = true
	for w := run.claim(run.n); w != nil; w = run.claim(run.n) {
		r.stolen = append(r.stolen, *w)
	}
	if len(r.stolen) == 0 && !run.readerServes {
		return busy, stolenBatch{}
	}
	r.c, r.readerServes = run.c, run.readerServes
	// Counted now, under run.mu: the batch's worker is still serving it
	// (run.n > 0), so the count is not zero and transmit cannot be past
	// its Wait.
	if r.readerServes {
		r.c.workers.Add(1 + len(r.stolen))
	} else {
		r.c.workers.Add(len(r.stolen))
	}
	return busy, r
}

// testHookRescued, when set by a test, runs in each rescued request's
// goroutine before the request: a place to inject a panic.
var testHookRescued func()

// rescue serves a batch that has run for over a tick, as look found
// it: its requests not yet started each get a goroutine, another worker
// starts reading if the batch's worker was the only reader, and the
// service time is raised so readers stop batching and serving their
// batches themselves until the backend is fast again.
func (c *conn) rescue(r stolenBatch) {
	c.srv.stats.Stalls.Add(1)
	if ns := int64(stallAfter); c.serviceNs.Load() < ns {
		c.serviceNs.Store(ns)
	}
	for _, w := range r.stolen {
		go func() {
			defer c.workers.Done()
			defer c.recovered("rescued request")
			if testHookRescued != nil {
				testHookRescued()
			}
			rep := c.handle(&w)
			c.writer.queue([]*reply{rep})
		}()
	}
	if r.readerServes {
		go c.worker()
	}
}
