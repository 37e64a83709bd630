package nbdserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
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
	if _, ok := c.nc.(*net.TCPConn); ok && c.raw != nil {
		c.spin = newSpinReader(c.raw, &c.srv.transmitting, &c.srv.stats)
		c.br.src = c.spin
	}
	c.tune = newTuner(c.tunable(), uint8(c.knobs.Load()))
	c.workers.Add(1)
	c.worker()
	c.workers.Wait()
	c.dropPending()
	c.budget.settle()
	if c.sawDisc || c.stopped.Load() {
		// DISC or a shutdown: what was written must be durable.
		if err := c.exp.Flush(c.ctx); err != nil && !c.killed.Load() {
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
	charge  int64
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

// inlineMax is the service time under which the reader may serve its
// batch itself and read on afterwards (when the tuner's knobInline says
// so), instead of handing the read turn to another worker. Handing over
// wakes a goroutine, often on another OS thread, which costs from a few
// microseconds to tens in a VM: more than a 4 KiB pwrite to the page
// cache, and on a 2-core VM more than running 1 MiB writes one after
// another. Which way is faster below this bound the tuner measures (see
// tune.go); above it a request is slow enough to block the reader (the
// stall watch's tick), and it is always handed over.
const inlineMax = stallAfter

// worker reads requests when it is its turn, then serves them.
//
// A worker takes more than one request per turn when more are already in
// the read buffer and the backend is fast (batchLimit); the batch's replies
// go out with one writev. While serving inline pays (inline) it
// then serves the batch itself and reads again: one goroutine per
// connection, no hand-offs. Otherwise it first makes sure another worker
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
		if c.inline() && c.waiting.Load() > 0 {
			return // another worker reads next; one is enough
		}
		n, inline := c.readTurn(run)
		if n == 0 {
			return
		}
		c.serveBatch(run, n, inline)
	}
}

// readTurn takes the reading turn, reads a batch into run.items and hands
// the turn on. It returns how many it read (0: reading has ended) and
// whether the batch is to be served inline.
//
// rmu is unlocked by a defer, so that a panic while reading does not leave
// the other workers waiting for the turn forever. The panic is recovered
// here and the connection killed before the turn is given up: the next
// worker then sees killed and leaves, rather than read on from a buffer
// the panic may have left half updated.
func (c *conn) readTurn(run *batchRun) (n int, inline bool) {
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
	// Serving inline, this worker is the only reader: it does its
	// batch, then reads again. Payloads are then left in the read
	// buffer (no copy): each batch is done before the next read, so
	// the buffer is seldom pinned when it fills and a stall pins at
	// most one old chunk.
	inline = c.inline()
	if c.spin != nil {
		c.spin.on = inline && c.knobs.Load()&knobSpin != 0
	}
	idle := c.srv.IdleTimeout > 0 && c.inflight.Load() == 0 && c.br.Buffered() < requestHeaderSize
	if idle {
		c.setReadDeadline(time.Now().Add(c.srv.IdleTimeout))
	}
	w, ok := c.readOne(true, inline)
	if idle {
		c.setReadDeadline(time.Time{})
	}
	if !ok {
		if idle && errors.Is(c.readErr, os.ErrDeadlineExceeded) && !c.stopped.Load() {
			c.srv.stats.IdleTimeouts.Add(1)
			c.log.Info("idle connection closed", "after", c.srv.IdleTimeout)
		}
		return 0, false
	}
	run.items[0] = w
	n = 1
	for limit := c.batchLimit(); n < limit && c.br.Buffered() >= requestHeaderSize; n++ {
		if run.items[n], ok = c.readOne(false, inline); !ok {
			break
		}
	}
	if !inline && c.waiting.Load() == 0 && !c.readDone {
		c.workers.Add(1)
		go c.worker()
	}
	c.knobs.Store(uint32(c.tune.count(n, batchBytes(run.items[:n]), monoNow)))
	return n, inline
}

// inline reports whether the reader serves its batches itself: requests
// are cheap enough, and the tuner found it pays.
func (c *conn) inline() bool {
	return c.knobs.Load()&knobInline != 0 && c.serviceNs.Load() < int64(inlineMax)
}

// tunable is the set of knobs the tuner may turn for this connection.
func (c *conn) tunable() uint8 {
	mask := uint8(knobInline)
	if c.splicer != nil {
		mask |= knobSplice
	}
	if c.spin != nil {
		mask |= knobSpin
	}
	return mask
}

// batchBytes is the data the reads and writes of a batch move.
func batchBytes(items []work) int64 {
	var n int64
	for i := range items {
		if t := items[i].r.typ; t == cmdRead || t == cmdWrite {
			n += int64(items[i].r.length)
		}
	}
	return n
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
func (c *conn) serveBatch(run *batchRun, n int, sole bool) {
	run.begin(&c.srv.stalls, n, sole)
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
		c.queue(reps[:served])
		clear(reps[:served])
	}
}

// readOne reads the next request and its payload. It returns false when
// reading must end: DISC, EOF, shutdown, or a protocol error (readDone is
// then set). With wait false it returns false, consuming nothing, rather
// than wait for the in-flight budget. With take, a write's payload up to
// maxTake stays in the read buffer. Called with rmu held.
func (c *conn) readOne(wait, take bool) (work, bool) {
	h, err := c.br.Peek(requestHeaderSize)
	if err != nil {
		c.readErr = err
		if !c.stopped.Load() && !c.killed.Load() && !errors.Is(err, io.EOF) {
			c.log.Debug("read request", "err", err)
		}
		return c.endReading()
	}
	if m := binary.BigEndian.Uint32(h[0:]); m != magicRequest {
		c.srv.stats.ProtocolErrors.Add(1)
		c.log.Warn("bad request magic; closing", "magic", fmt.Sprintf("%#x", m))
		return c.endReading()
	}
	r := request{
		flags:  binary.BigEndian.Uint16(h[4:]),
		typ:    binary.BigEndian.Uint16(h[6:]),
		cookie: binary.BigEndian.Uint64(h[8:]),
		offset: binary.BigEndian.Uint64(h[16:]),
		length: binary.BigEndian.Uint32(h[24:]),
	}
	var charge int64
	if (r.typ == cmdRead || r.typ == cmdWrite) && r.length <= MaxBlockSize {
		charge = int64(r.length)
	}
	if r.typ != cmdDisc {
		if wait {
			if !c.budget.acquire(charge) {
				return c.endReading()
			}
		} else if !c.budget.tryAcquire(charge) {
			return work{}, false
		}
	}
	c.br.Discard(requestHeaderSize)
	// After a large write, expect another: read its header alone (see
	// inbuf.lean).
	c.br.lean = r.typ == cmdWrite && r.length > maxTake
	if r.typ == cmdDisc {
		c.sawDisc = true
		return c.endReading()
	}
	w := work{r: r, charge: charge}
	if r.typ == cmdWrite {
		if r.length > MaxBlockSize {
			// Too long to take: drop the payload if that is cheap enough,
			// answer EINVAL; else we cannot find the next request safely,
			// so close.
			if r.length > maxPayloadSkip {
				c.srv.stats.ProtocolErrors.Add(1)
				c.log.Warn("write payload too long to skip; closing", "length", r.length)
				c.budget.release(0)
				return c.endReading()
			}
			if _, err := io.CopyN(io.Discard, c.br, int64(r.length)); err != nil {
				c.budget.release(0)
				return c.endReading()
			}
		} else {
			// The payload holds its bytes of both budgets while it
			// arrives: a client that sends a header and then trickles or
			// withholds the payload is dropped after PayloadTimeout, or a
			// few could hold the shared bound and stall every client.
			var err error
			slow := c.srv.PayloadTimeout > 0 && c.br.Buffered() < int(r.length)
			if slow {
				c.setReadDeadline(time.Now().Add(c.srv.PayloadTimeout))
			}
			if take && r.length <= maxTake {
				w.payload, w.pinned, err = c.br.Take(int(r.length))
			} else {
				w.pooled = getBuf(int(r.length))
				w.payload = *w.pooled
				_, err = io.ReadFull(c.br, w.payload)
			}
			if slow {
				c.setReadDeadline(time.Time{})
			}
			if err != nil {
				if slow && errors.Is(err, os.ErrDeadlineExceeded) && !c.stopped.Load() {
					c.srv.stats.PayloadTimeouts.Add(1)
					c.log.Info("write payload did not arrive; closing", "payload_timeout", c.srv.PayloadTimeout, "length", r.length)
				}
				w.done()
				c.budget.release(charge)
				return c.endReading()
			}
		}
	}
	c.inflight.Add(1)
	return w, true
}
