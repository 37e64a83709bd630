package nbdserver

// Replies of asynchronous requests (async.go) are finished on goroutines
// that are not the connection's, and must never wait for its socket. They
// are queued, and written there only as far as that needs no wait
// (writeNoWait); the rest a flusher goroutine of the connection writes:
// started when something is left and none runs, it writes until nothing
// is left and leaves. The bound on requests in flight (budget) bounds
// what can wait in the queue.

// queueNoWait queues a reply without writing it, and makes sure a flusher
// will. Called by done, before it counts its request out of asyncs, so
// that transmit's wait on asyncs covers the flusher it starts.
func (c *conn) queueNoWait(rep *reply) {
	w := &c.writer
	w.qmu.Lock()
	w.pending = append(w.pending, rep)
	w.qmu.Unlock()
	if c.holds.Load() > 0 {
		return // the holder's Release writes it, with the rest of its burst
	}
	c.writeQueuedNoWait()
}

// writeQueuedNoWait writes the queued replies if the socket takes them at
// once, and leaves the rest to a flusher.
func (c *conn) writeQueuedNoWait() {
	if c.writeNoWait() {
		return
	}
	if c.flushing.CompareAndSwap(false, true) {
		c.asyncs.Add(1)
		go c.flush()
	}
}

// Hold is a completer's word (completion.Batcher) that completions of
// this connection's requests follow in a burst: their replies stay queued
// until its Release, which writes them together. It counts in asyncs, so
// that the connection does not end (and drop its queue) under a burst.
func (c *conn) Hold() {
	c.asyncs.Add(1)
	c.holds.Add(1)
}

// Release ends a burst that Hold began, writing what it left queued
// (unless another completer still holds: its Release writes them). It
// never waits: it runs on the completer's goroutine.
func (c *conn) Release() {
	if c.holds.Add(-1) == 0 {
		c.writeQueuedNoWait()
	}
	c.asyncs.Done()
}

// flush writes queued replies until none is left. Unlike a worker it may
// wait for wmu: if another goroutine is writing, this one writes what is
// queued after it (a worker only tries, and leaves its replies to the
// writer, which looks again before it lets go).
func (c *conn) flush() {
	defer c.asyncs.Done()
	defer c.recovered("reply flusher")
	for {
		c.drainWaiting()
		c.flushing.Store(false)
		// A reply queued after the drain found flushing still set and
		// started no flusher: take it, unless another flusher has.
		if !c.writer.hasPending() && !c.writer.carrying.Load() || !c.flushing.CompareAndSwap(false, true) {
			return
		}
	}
}

// drainWaiting takes wmu, waiting for it, and writes the queue.
func (c *conn) drainWaiting() {
	w := &c.writer
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.drainLocked()
}
