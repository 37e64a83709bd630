package nbdserver

import (
	"net"
	"slices"

	"golang.org/x/sys/unix"
)

// Writing replies where waiting is not allowed: an asynchronous request's
// completion runs on a goroutine other connections share (a remote leg's
// reply reader). Most of the time the socket takes a batch of replies at
// once, and handing them to a flusher goroutine would only add a wake-up
// per batch; so the completion tries a non-blocking writev itself, and
// only what the socket does not take (a client slow to read) is left to
// the flusher.

// writeNoWait writes the queued replies without waiting for anything: not
// for wmu, not for the socket. It reports true when nothing is left for
// a flusher to do: the queue is written, or another goroutine holds wmu
// (every holder looks at the queue again after it lets go: flushQueue,
// flush, and this), or a carry is waiting (the flusher that was started
// for it writes the queue after it). It reports false when a flusher must
// write the rest: what the socket did not take, or a queue it cannot
// write here (TLS, whose records are written whole). A spliced reply's
// data is spliced from its pipe as far as the socket takes it at once.
func (c *conn) writeNoWait() bool {
	w := &c.writer
	if w.raw == nil || w.gather != nil {
		return false
	}
	for {
		if !w.wmu.TryLock() {
			return true
		}
		if w.carried != nil {
			// The flusher started for the carry writes the queue once the
			// carry is out. Looping here until it takes wmu would spin
			// the leg's reader, which others' completions wait on.
			w.wmu.Unlock()
			return true
		}
		ok := w.writeQueueNoWait()
		w.wmu.Unlock()
		if !ok {
			return false
		}
		if !w.hasPending() {
			return true
		}
	}
}

// writeQueueNoWait is writeNoWait's write of the queue, with wmu held and
// no carry waiting. It reports false when a flusher must write the rest.
func (w *replyWriter) writeQueueNoWait() bool {
	w.qmu.Lock()
	batch := w.pending
	w.pending, w.spare = w.spare[:0], nil
	w.qmu.Unlock()
	bufs := w.vec[:0]
	for i, r := range batch {
		bufs = append(bufs, r.head[:r.headLen])
		if len(r.data) > 0 {
			bufs = append(bufs, r.data)
		}
		if r.pipe == nil {
			continue
		}
		// The header and what precedes it go first, then the data
		// straight from the pipe.
		rest := w.tryWrite(bufs)
		if len(rest) == 0 && !w.broken {
			w.spliceNoWait(r)
		}
		if len(rest) > 0 || r.pipeLen > 0 && !w.broken {
			w.carryFrom(batch, i, rest)
			return false
		}
		bufs = bufs[:0]
	}
	rest := w.tryWrite(bufs)
	if len(rest) > 0 {
		w.carry, w.carried = rest, batch
		w.carrying.Store(true)
		w.vec = nil // carry holds the vector now
		return false
	}
	clear(bufs)
	w.vec = bufs[:0]
	w.recycle(batch)
	w.qmu.Lock()
	if w.spare == nil {
		w.spare = batch[:0]
	}
	w.qmu.Unlock()
	return true
}

// carryFrom makes a carry of a batch written up to its spliced reply i:
// rest is what the socket did not take of the bytes up to i's header,
// and i's pipe holds what it did not take of i's data. The replies after
// i go back to the front of the queue, for whoever writes after the
// carry. Called with wmu held.
func (w *replyWriter) carryFrom(batch []*reply, i int, rest net.Buffers) {
	if after := batch[i+1:]; len(after) > 0 {
		w.qmu.Lock()
		w.pending = append(slices.Clone(after), w.pending...)
		w.qmu.Unlock()
		clear(after)
	}
	w.carry, w.carried, w.carryPipe = rest, batch[:i+1], batch[i]
	w.carrying.Store(true)
	w.vec = nil // carry holds the vector now
}

// spliceNoWait moves as much of r's data from its pipe into the socket as
// the socket takes at once; r.pipeLen is left at what it did not take. A
// failed splice marks the writer broken. Called with wmu held.
func (w *replyWriter) spliceNoWait(r *reply) {
	var serr error
	err := w.raw.Write(func(fd uintptr) bool {
		r.pipeLen, serr = spliceSome(r.pipe.r, int(fd), r.pipeLen)
		return true // never wait: EAGAIN leaves the rest
	})
	if err == nil && serr != unix.EAGAIN {
		err = serr
	}
	if err != nil {
		w.fail(err)
	}
}

// tryWrite writes as much of bufs as the socket takes now, and returns
// what it did not take. A broken writer drops everything; a failed write
// marks it broken. Called with wmu held.
func (w *replyWriter) tryWrite(bufs net.Buffers) net.Buffers {
	if w.writevFn == nil {
		w.writevFn = w.writevOnce // once per connection, not a closure per write
	}
	for len(bufs) > 0 && !w.broken {
		w.tryBufs = bufs
		err := w.raw.Write(w.writevFn)
		n, werr := w.tryN, w.tryErr
		w.tryBufs, w.tryErr = nil, nil
		switch {
		case werr == unix.EAGAIN:
			return bufs
		case err == nil && werr != nil:
			err = werr
		}
		if err != nil {
			w.fail(err)
			return nil
		}
		consume(&bufs, n)
	}
	return nil
}

// writevOnce is tryWrite's one writev of tryBufs on fd, its result in
// tryN and tryErr; it never waits (EAGAIN leaves the rest).
func (w *replyWriter) writevOnce(fd uintptr) bool {
	for {
		w.tryN, w.tryErr = unix.Writev(int(fd), w.tryBufs)
		if w.tryErr != unix.EINTR {
			return true
		}
	}
}

// consume drops the first n bytes of v, as a write of them does.
func consume(v *net.Buffers, n int) {
	for len(*v) > 0 {
		b := (*v)[0]
		if n < len(b) {
			(*v)[0] = b[n:]
			return
		}
		n -= len(b)
		(*v)[0] = nil
		*v = (*v)[1:]
	}
}

// sendCarry sends the carry a non-blocking write left, waiting for the
// socket, then recycles its batch. Called with wmu held.
func (w *replyWriter) sendCarry() {
	batch := w.carried
	w.carried = nil
	p := w.carryPipe
	w.carryPipe = nil
	defer w.carrying.Store(false)
	defer w.recycle(batch)
	if !w.broken {
		w.writeOut(&w.carry)
	}
	if p != nil && !w.broken {
		if err := w.spliceOut(p.pipe, p.pipeLen); err != nil {
			w.fail(err)
		} else {
			p.pipeLen = 0
		}
	}
	clear(w.carry)
	w.carry = nil
}
