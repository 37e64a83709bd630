package nbdserver

import (
	"net"

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
// a flusher to do; false when the queue, or the unsent rest of its batch
// (the carry), still has to be written by one. TLS connections and
// spliced replies (their data is moved from a pipe, which may wait) are
// always left to the flusher.
func (c *conn) writeNoWait() bool {
	w := &c.writer
	if w.raw == nil || w.gather != nil || !w.wmu.TryLock() {
		return false
	}
	defer w.wmu.Unlock()
	if w.carried != nil {
		return false // the flusher sends it first, waiting for the socket
	}
	w.qmu.Lock()
	batch := w.pending
	for _, r := range batch {
		if r.pipe != nil {
			w.qmu.Unlock()
			return false
		}
	}
	w.pending, w.spare = w.spare[:0], nil
	w.qmu.Unlock()
	bufs := w.vec[:0]
	for _, r := range batch {
		bufs = append(bufs, r.head[:r.headLen])
		if len(r.data) > 0 {
			bufs = append(bufs, r.data)
		}
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
	more := len(w.pending) > 0 // queued while this wrote: a worker found wmu taken
	w.qmu.Unlock()
	return !more
}

// tryWrite writes as much of bufs as the socket takes now, and returns
// what it did not take. A broken writer drops everything; a failed write
// marks it broken. Called with wmu held.
func (w *replyWriter) tryWrite(bufs net.Buffers) net.Buffers {
	for len(bufs) > 0 && !w.broken {
		var n int
		var werr error
		err := w.raw.Write(func(fd uintptr) bool {
			for {
				n, werr = unix.Writev(int(fd), bufs)
				if werr != unix.EINTR {
					return true // never wait: EAGAIN leaves the rest
				}
			}
		})
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
	defer w.carrying.Store(false)
	defer w.recycle(batch)
	if !w.broken {
		w.writeOut(&w.carry)
	}
	clear(w.carry)
	w.carry = nil
}
