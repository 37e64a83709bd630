package nbdserver

import (
	"net"
	"time"
)

// The reading turn: workers take turns reading batches of requests off
// the socket, then serve them (see transmit).

// transmit serves requests until DISC, EOF, shutdown or a protocol error.
// Workers take turns as the reader (leader/followers, as nbdkit's threads
// do): one holds rmu and reads a request, hands the reading on, then does
// the request and sends its reply itself. No goroutine hand-off per request,
// and worker stacks, grown once, are reused. When transmit returns, every
// reply has been written (or dropped on a dead socket).
func (c *conn) transmit() {
	c.srv.transmitting.Add(1)
	defer c.srv.transmitting.Add(-1)
	_, tcp := c.nc.(*net.TCPConn)
	if tcp && c.raw != nil {
		c.spin = newSpinReader(c.raw, &c.srv.transmitting, &c.srv.stats)
		c.br.src = c.spin
	}
	setting, mask := startSetting(tcp), c.tunable()
	if p := c.srv.pinned; p != nil {
		setting, mask = *p, 0
	}
	c.knobs.Store(uint32(setting))
	c.tune = newTuner(mask, setting)
	c.tune.stats = &c.srv.stats
	if a, ok := c.exp.(AsyncExport); ok {
		c.async = a
		if sr, ok := a.(AsyncSpliceReader); ok && c.splicer != nil {
			c.asyncSplicer = sr
		}
	}
	c.workers.Add(1)
	c.worker()
	c.workers.Wait()
	c.asyncs.Wait() // their replies are queued, and written or dropped
	c.writer.dropPending()
	c.budget.settle()
	if c.sawDisc || c.stopped.Load() {
		// DISC or a shutdown: what was written must be durable. No
		// client asked for a FLUSH, so an export that tells the two
		// apart gets a Sync.
		sync := c.exp.Flush
		if s, ok := c.exp.(Syncer); ok {
			sync = s.Sync
		}
		if err := sync(c.ctx); err != nil && !c.killed.Load() {
			c.log.Warn("flush at disconnect", "err", err)
		}
	}
}

// work is one request read off the socket.
type work struct {
	r       request
	payload []byte   // a write's data: in pooled, or in the read buffer
	pooled  *[]byte  // returned to the pool once done
	pinned  *inchunk // unpinned once done
	// pipe holds the first inPipe bytes of a write's payload, and payload
	// only the rest, if any (splicewrite.go): startAsync, which every
	// request read goes through, either hands them on with the request or
	// copies them into payload.
	pipe   *pipe
	inPipe int
	charge int64
}

// done gives back the payload's memory.
func (w *work) done() {
	if w.pooled != nil {
		putBuf(w.pooled)
	}
	if w.pinned != nil {
		w.pinned.unpin()
	}
}

// maxBatch bounds the requests one worker takes per read turn.
const maxBatch = 16

// batchBudget is how long a batch should take to serve. Requests in a batch
// are served one after another, so a later one waits for the earlier ones;
// the batch is sized from the measured service time (serviceNs) to keep
// that wait near this bound. A slow backend thus gets batches of one.
const batchBudget = 100 * time.Microsecond

// readerServesMax is the service time under which the reader may serve
// its batch itself and read on afterwards (the reader-serves mode, when the
// tuner's knobReaderServes says so), instead of handing the read turn to
// another worker. Handing over wakes a goroutine, often on another OS
// thread, which costs from a few microseconds to tens in a VM: more than a
// 4 KiB pwrite to the page cache, and on a 2-core VM more than running 1 MiB
// writes one after another. Which way is faster below this bound the tuner
// measures (see tune.go); above it a request is slow enough to block the
// reader (the stall watch's tick), and it is always handed over.
const readerServesMax = stallAfter

// worker reads requests when it is its turn, then serves them.
//
// A worker takes more than one request per turn when more are already in
// the read buffer and the backend is fast (batchLimit); the batch's replies
// go out with one writev. While the reader serving its batch itself pays
// (readerServes) it then serves the batch itself and reads again: one
// goroutine per connection, no hand-offs. Otherwise it first makes sure another worker
// will read next (leader/followers, as nbdkit's threads do), starting one
// when none is waiting: workers never outnumber requests in flight (which
// the budget bounds) by more than two. Surplus workers leave when the
// backend is fast again.
func (c *conn) worker() {
	defer c.workers.Done()
	defer c.recovered("worker")
	run := &batchRun{c: c}
	c.srv.stalls.add(run)
	defer c.srv.stalls.remove(run)
	for {
		if c.readerServes() && c.waiting.Load() > 0 {
			return // another worker reads next; one is enough
		}
		n, readerServes := c.readTurn(run)
		if n == 0 {
			return
		}
		c.serveBatch(run, n, readerServes)
	}
}

// readTurn takes the reading turn, reads a batch into run.items and hands
// the turn on. It returns how many it read (0: reading has ended) and
// whether this worker serves the batch itself, as the only reader.
//
// rmu is unlocked by a defer, so that a panic while reading does not leave
// the other workers waiting for the turn forever. The panic is recovered
// here and the connection killed before the turn is given up: the next
// worker then sees killed and leaves, rather than read on from a buffer
// the panic may have left half updated.
func (c *conn) readTurn(run *batchRun) (n int, readerServes bool) {
	c.waiting.Add(1)
	c.rmu.Lock()
	defer func() {
		if p := recover(); p != nil {
			c.panicked("reading requests", p)
			n = 0
		}
		c.rmu.Unlock()
	}()
	c.waiting.Add(-1)
	if c.readDone || c.killed.Load() {
		return 0, false
	}
	// Serving its batch itself, this worker is the only reader: it does its
	// batch, then reads again. Payloads are then left in the read
	// buffer (no copy): each batch is done before the next read, so
	// the buffer is seldom pinned when it fills. Requests that stall
	// (rescued by the stall watch) or go asynchronous keep their pins
	// while the reader reads on; maxStranded bounds the chunks they
	// hold (MayTake).
	readerServes = c.readerServes()
	if c.spin != nil {
		c.spin.readerServes = readerServes && c.knobs.Load()&knobSpin != 0
	}
	w, ok := c.readFirst(readerServes)
	if !ok {
		return 0, false
	}
	run.items[0] = w
	n = 1
	for limit := c.batchLimit(); n < limit && (c.br.Buffered() >= requestHeaderSize || c.readMoreNow()); {
		if run.items[n], ok = c.readOne(false, readerServes); !ok {
			break
		}
		if c.startAsync(&run.items[n]) {
			run.items[n] = work{}
			continue
		}
		n++
	}
	if !readerServes && c.waiting.Load() == 0 && !c.readDone {
		c.workers.Add(1)
		go c.worker()
	}
	bytes, touches := batchBytes(run.items[:n])
	c.knobs.Store(uint32(c.tune.count(n, bytes, touches, monoNow)))
	return n, readerServes
}

// readFirst reads the first request of a batch, waiting for it. Requests
// the export takes asynchronously (startAsync) are started as they come,
// and the reader reads on, keeping the turn: only a request to be served
// here ends the loop. Called with rmu held.
func (c *conn) readFirst(readerServes bool) (work, bool) {
	for {
		idle := false
		if c.srv.IdleTimeout > 0 && c.br.Buffered() < requestHeaderSize {
			idle = c.awaitRequest()
		}
		w, ok := c.readOne(true, readerServes)
		if !ok {
			if idle {
				c.srv.stats.IdleTimeouts.Add(1)
				c.log.Info("idle connection closed", "after", c.srv.IdleTimeout)
			}
			return work{}, false
		}
		if !c.startAsync(&w) {
			return w, true
		}
	}
}

// readerServes reports whether the reader serves its batches itself:
// requests are cheap enough (readerServesMax), and the tuner found it pays.
func (c *conn) readerServes() bool {
	return c.knobs.Load()&knobReaderServes != 0 && c.serviceNs.Load() < int64(readerServesMax)
}

// tunable is the set of knobs the tuner may turn for this connection.
func (c *conn) tunable() uint8 {
	mask := uint8(knobReaderServes)
	if c.splicer != nil {
		mask |= knobSplice
	}
	if c.spin != nil {
		mask |= knobSpin
	}
	if c.pipeWriter != nil {
		mask |= knobPipeWrite
	}
	return mask
}

// batchBytes is the data the reads and writes of a batch move, and the
// knobs its requests could feel: splicing only for reads it may splice
// (see spliceRead), writing from pipes only for writes of that size.
func batchBytes(items []work) (n int64, touches uint8) {
	touches = knobReaderServes | knobSpin
	for i := range items {
		r := &items[i].r
		if r.typ == cmdRead || r.typ == cmdWrite {
			n += int64(r.length)
		}
		if r.length >= spliceMin && r.length <= pipeSize {
			switch r.typ {
			case cmdRead:
				touches |= knobSplice
			case cmdWrite:
				touches |= knobPipeWrite
			}
		}
	}
	return n, touches
}

// batchLimit is how many requests the reader may take in one turn now.
func (c *conn) batchLimit() int {
	ns := c.serviceNs.Load()
	if ns <= 0 {
		return maxBatch
	}
	return int(min(maxBatch, max(1, int64(batchBudget)/ns)))
}

// endReading ends the reading turns for good; readOne's answer then.
func (c *conn) endReading() (work, bool) {
	c.readDone = true
	return work{}, false
}

// serveBatch does the n requests in run.items in order, then queues their
// replies together. It times the batch to keep serviceNs current; the
// server's stall watch sees the batch while it runs.
func (c *conn) serveBatch(run *batchRun, n int, readerServes bool) {
	run.begin(&c.srv.stalls, n, readerServes)
	start := time.Now()
	var reps [maxBatch]*reply
	served := 0
	for w := run.claim(n); w != nil; w = run.claim(n) {
		reps[served] = c.handle(w)
		served++
	}
	run.end()
	if served > 0 {
		// A moving average with weight 1/8: one slow request does not
		// end batching; a backend that has become slow does within a
		// few batches.
		per := int64(time.Since(start)) / int64(served)
		old := c.serviceNs.Load()
		c.serviceNs.Store(old + (per-old)/8)
		c.writer.queue(reps[:served])
		clear(reps[:served])
	}
}
