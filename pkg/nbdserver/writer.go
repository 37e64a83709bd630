package nbdserver

import (
	"bufio"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// replyWriter sends a connection's replies. Whoever finishes a request
// queues its reply and, if no one is writing, becomes the writer and sends
// everything queued with one writev (flat combining): no goroutine
// hand-off per reply, and replies that finish together go out together.
type replyWriter struct {
	// Set once by newConn, before the connection's goroutines start.
	nc  net.Conn
	raw syscall.RawConn // nc's descriptor, for splicing; nil without one
	// gather, under TLS, collects a batch's pieces into full records
	// before they reach nc (see tlsWriteBuffer). Set with nc by the
	// handshake's STARTTLS, before transmission; used under wmu.
	gather  *bufio.Writer
	pipes   *pipePool     // the server's, where spliced replies' pipes go back
	budget  *budget       // the connection's, where written replies' bytes go back
	timeout time.Duration // Server.WriteTimeout; <= 0: none
	// failed is called, with wmu held, when a write fails; the writer has
	// marked itself broken and drops further replies (conn.writeFailed).
	failed func(error)
	// drained, when a test sets it, runs in drainIfFree with wmu held once
	// the queue is empty, just before wmu is unlocked: the moment at which
	// a reply queued by another goroutine finds wmu taken and is left for
	// this writer, which has already looked. A field, not a package
	// variable, so that other tests' connections never see it.
	drained func()

	qmu     sync.Mutex // guards pending and spare
	pending []*reply   // queued, not yet taken by a writer; under qmu
	spare   []*reply   // an emptied batch, reused as the next pending; under qmu

	wmu    sync.Mutex  // held by the one writing to the socket
	vec    net.Buffers // writev's vector, reused; under wmu
	broken bool        // a write failed: drop further replies; under wmu
	wlimit time.Time   // the write deadline set on nc (see armWrite); under wmu

	// carry is what a write that could not wait (writeNoWait) left
	// unsent of a batch, and carried that batch's replies, recycled once
	// it is sent: whoever writes next sends it first. Under wmu; carrying
	// says whether there is one, for a flusher deciding to leave.
	// carryPipe, when set, is the last of carried: a spliced reply whose
	// pipe holds pipeLen bytes of data to send after carry.
	carry     net.Buffers
	carried   []*reply
	carryPipe *reply
	carrying  atomic.Bool

	// tryWrite's writev, bound once (writevFn), with its argument and
	// results; under wmu.
	out      net.Buffers // what write is sending; under wmu
	writevFn func(fd uintptr) bool
	tryBufs  net.Buffers
	tryN     int
	tryErr   error
}

// queue adds replies to the queue and writes it unless another goroutine
// is writing already; that one then picks them up (see flushQueue).
func (w *replyWriter) queue(reps []*reply) {
	w.qmu.Lock()
	w.pending = append(w.pending, reps...)
	w.qmu.Unlock()
	w.flushQueue()
}

// flushQueue writes queued replies unless another goroutine is writing.
// After writing it looks again: a reply queued while it wrote (whose
// sender found wmu taken) is then still seen, so none is stranded.
func (w *replyWriter) flushQueue() {
	for w.drainIfFree() && w.hasPending() {
	}
}

// hasPending reports whether replies are queued.
func (w *replyWriter) hasPending() bool {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	return len(w.pending) > 0
}

// drainIfFree takes wmu unless another goroutine holds it, and then writes
// queued replies until the queue is empty; it reports whether it took wmu.
// The unlock is deferred so that a panic while writing (recovered by the
// goroutine's caller, which kills the connection) leaves no one unable to
// write or drop replies.
func (w *replyWriter) drainIfFree() bool {
	if !w.wmu.TryLock() {
		return false
	}
	defer w.wmu.Unlock()
	w.drainLocked()
	return true
}

// drainLocked writes queued replies until the queue is empty. Called with
// wmu held.
func (w *replyWriter) drainLocked() {
	if w.carried != nil {
		w.sendCarry()
	}
	for {
		w.qmu.Lock()
		batch := w.pending
		w.pending, w.spare = w.spare[:0], nil
		w.qmu.Unlock()
		if len(batch) == 0 {
			w.qmu.Lock()
			w.spare = batch
			w.qmu.Unlock()
			if w.drained != nil {
				w.drained()
			}
			return
		}
		w.writeBatch(batch)
		w.qmu.Lock()
		if w.spare == nil {
			w.spare = batch[:0]
		}
		w.qmu.Unlock()
	}
}

// dropPending recycles replies still queued once every worker has left:
// after a panic in a writer, replies queued meanwhile found wmu taken and
// were left for it. Their pipes and budget must not outlive the
// connection.
func (w *replyWriter) dropPending() {
	w.qmu.Lock()
	left := w.pending
	w.pending = nil
	w.qmu.Unlock()
	w.recycle(left)
	w.recycle(w.carried)
	w.carried, w.carry, w.carryPipe = nil, nil, nil
}

// writeBatch sends replies with one writev, then recycles their buffers
// (deferred: also after a panic, so no pipe or budget leaks). Called with
// wmu held.
func (w *replyWriter) writeBatch(batch []*reply) {
	defer w.recycle(batch)
	bufs := w.vec[:0]
	for _, r := range batch {
		if w.broken {
			break
		}
		bufs = append(bufs, r.head[:r.headLen])
		if len(r.data) > 0 {
			bufs = append(bufs, r.data)
		}
		if r.pipe != nil {
			// The header and what precedes it go first, then the data
			// straight from the pipe.
			w.writeOut(&bufs)
			if !w.broken {
				if err := w.spliceOut(r.pipe, r.pipeLen); err != nil {
					w.fail(err)
				} else {
					r.pipeLen = 0
				}
			}
		}
	}
	if !w.broken {
		w.writeOut(&bufs)
	}
	clear(bufs)
	w.vec = bufs[:0]
}

// recycle gives back the buffers, pipes and budget of replies written or
// dropped.
func (w *replyWriter) recycle(batch []*reply) {
	for i, r := range batch {
		if r == nil {
			continue
		}
		if r.pooled != nil {
			putBuf(r.pooled)
		}
		if r.pipe != nil {
			if r.pipeLen == 0 {
				w.pipes.put(r.pipe) // emptied
			} else {
				w.pipes.discard(r.pipe)
			}
		}
		w.budget.release(r.charge)
		batch[i] = nil
		putReply(r)
	}
}

// writeOut writes and empties bufs. Called with wmu held.
func (w *replyWriter) writeOut(bufs *net.Buffers) {
	if len(*bufs) == 0 {
		return
	}
	v := *bufs
	w.armWrite()
	if err := w.write(v); err != nil {
		w.fail(err)
	}
	*bufs = (*bufs)[:0]
}

// write sends v with one writev, or under TLS through gather. Called
// with wmu held.
func (w *replyWriter) write(v net.Buffers) error {
	if w.gather == nil {
		w.out = v // WriteTo on the parameter would move it to the heap, each call
		_, err := w.out.WriteTo(w.nc)
		w.out = nil
		return err
	}
	for _, b := range v {
		if _, err := w.gather.Write(b); err != nil {
			return err
		}
	}
	return w.gather.Flush()
}

// fail marks the writer broken, so that further replies are dropped, and
// tells the connection. Called with wmu held.
func (w *replyWriter) fail(err error) {
	w.broken = true
	w.failed(err)
}

// armWrite makes sure the socket's write deadline lies at least timeout
// ahead before a write. Setting a deadline costs a lock and a timer
// update, too much for every batch of small replies, so it is set a
// quarter further out and renewed only once less than timeout is left: a
// client that takes no reply is dropped between timeout and 1.25 times it
// after the write began. Called with wmu held.
func (w *replyWriter) armWrite() {
	t := w.timeout
	if t <= 0 {
		return
	}
	now := time.Now()
	if w.wlimit.Sub(now) >= t {
		return
	}
	w.wlimit = now.Add(t + t/4)
	w.nc.SetWriteDeadline(w.wlimit)
}

// spliceOut moves a reply's data from its pipe into the socket. Called
// with wmu held, after the reply's header was written.
func (w *replyWriter) spliceOut(p *pipe, n int) error {
	w.armWrite() // the poller behind raw.Write honours nc's write deadline
	var serr error
	err := w.raw.Write(func(fd uintptr) bool {
		n, serr = spliceSome(p.r, int(fd), n)
		return serr != unix.EAGAIN // EAGAIN: the socket is full, wait until it drains
	})
	if err != nil {
		return err
	}
	return serr
}
