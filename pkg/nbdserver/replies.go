package nbdserver

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Replies: encoding, and the writer that sends queued replies with one
// writev (flat combining).

// reply is one reply ready for the writer: a header and optional data.
type reply struct {
	head    [32]byte
	headLen int
	data    []byte
	pooled  *[]byte // returned to the pool once written
	pipe    *pipe   // data to splice into the socket after head, when set
	pipeLen int
	charge  int64 // bytes of budget to give back once written
}

// spliceOut moves a reply's data from its pipe into the socket. Called
// with wmu held, after the reply's header was written.
func (c *conn) spliceOut(p *pipe, n int) error {
	c.armWrite() // the poller behind raw.Write honours nc's write deadline
	var serr error
	err := c.raw.Write(func(fd uintptr) bool {
		for n > 0 {
			m, err := unix.Splice(p.r, nil, int(fd), nil, n, unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false // the socket is full: wait until it drains
			case err != nil:
				serr = err
				return true
			case m == 0:
				serr = io.ErrUnexpectedEOF
				return true
			}
			n -= int(m)
		}
		return true
	})
	if err != nil {
		return err
	}
	return serr
}

func (c *conn) simpleReply(rep *reply, cookie uint64, errno uint32) {
	binary.BigEndian.PutUint32(rep.head[0:], magicSimple)
	binary.BigEndian.PutUint32(rep.head[4:], errno)
	binary.BigEndian.PutUint64(rep.head[8:], cookie)
	rep.headLen = 16
}

func (c *conn) chunkHeader(rep *reply, cookie uint64, flags, typ uint16, length uint32) {
	binary.BigEndian.PutUint32(rep.head[0:], magicChunk)
	binary.BigEndian.PutUint16(rep.head[4:], flags)
	binary.BigEndian.PutUint16(rep.head[6:], typ)
	binary.BigEndian.PutUint64(rep.head[8:], cookie)
	binary.BigEndian.PutUint32(rep.head[16:], length)
	rep.headLen = 20
}

// errorReply answers a read or block status with an error: a structured
// error chunk when structured replies were negotiated, else a simple reply.
func (c *conn) errorReply(rep *reply, r request, errno uint32) {
	if !c.structured {
		c.simpleReply(rep, r.cookie, errno)
		return
	}
	c.chunkHeader(rep, r.cookie, chunkFlagDone, chunkError, 6)
	binary.BigEndian.PutUint32(rep.head[20:], errno)
	binary.BigEndian.PutUint16(rep.head[24:], 0) // no message
	rep.headLen = 26
}

// queue adds replies to the queue and writes it unless another goroutine
// is writing already; that one then picks them up (see flushQueue).
func (c *conn) queue(reps []*reply) {
	c.qmu.Lock()
	c.pending = append(c.pending, reps...)
	c.qmu.Unlock()
	c.flushQueue()
}

// flushQueue writes queued replies while it can take the write lock. After
// unlocking it looks again: a reply queued while it held the lock (whose
// sender's TryLock failed) is then still seen, so none is stranded.
func (c *conn) flushQueue() {
	for c.wmu.TryLock() {
		c.drainLocked()
		c.qmu.Lock()
		more := len(c.pending) > 0
		c.qmu.Unlock()
		if !more {
			return
		}
	}
}

// drainLocked writes queued replies until the queue is empty, then
// unlocks wmu, which the caller took. The unlock is deferred so that a
// panic while writing (recovered by the goroutine's caller, which kills
// the connection) leaves no one unable to write or drop replies.
func (c *conn) drainLocked() {
	defer c.wmu.Unlock()
	for {
		c.qmu.Lock()
		batch := c.pending
		c.pending, c.spare = c.spare[:0], nil
		c.qmu.Unlock()
		if len(batch) == 0 {
			c.qmu.Lock()
			c.spare = batch
			c.qmu.Unlock()
			return
		}
		c.writeBatch(batch)
		c.qmu.Lock()
		if c.spare == nil {
			c.spare = batch[:0]
		}
		c.qmu.Unlock()
	}
}

// dropPending recycles replies still queued once every worker has left:
// after a panic in a writer, replies queued meanwhile found wmu taken and
// were left for it. Their pipes and budget must not outlive the
// connection.
func (c *conn) dropPending() {
	c.qmu.Lock()
	left := c.pending
	c.pending = nil
	c.qmu.Unlock()
	c.recycle(left)
}

// writeBatch sends replies with one writev, then recycles their buffers
// (deferred: also after a panic, so no pipe or budget leaks). Called with
// wmu held.
func (c *conn) writeBatch(batch []*reply) {
	defer c.recycle(batch)
	bufs := c.vec[:0]
	for _, r := range batch {
		if c.broken {
			break
		}
		bufs = append(bufs, r.head[:r.headLen])
		if len(r.data) > 0 {
			bufs = append(bufs, r.data)
		}
		if r.pipe != nil {
			// The header and what precedes it go first, then the data
			// straight from the pipe.
			c.writeOut(&bufs)
			if !c.broken {
				if err := c.spliceOut(r.pipe, r.pipeLen); err != nil {
					c.writeFailed(err)
				} else {
					r.pipeLen = 0
				}
			}
		}
	}
	if !c.broken {
		c.writeOut(&bufs)
	}
	clear(bufs)
	c.vec = bufs[:0]
}

// recycle gives back the buffers, pipes and budget of replies written or
// dropped.
func (c *conn) recycle(batch []*reply) {
	for i, r := range batch {
		if r == nil {
			continue
		}
		if r.pooled != nil {
			putBuf(r.pooled)
		}
		if r.pipe != nil {
			if r.pipeLen == 0 {
				c.srv.pipes.put(r.pipe) // emptied
			} else {
				c.srv.pipes.discard(r.pipe)
			}
		}
		c.budget.release(r.charge)
		batch[i] = nil
		putReply(r)
	}
}

// writeOut writes and empties bufs.
func (c *conn) writeOut(bufs *net.Buffers) {
	if len(*bufs) == 0 {
		return
	}
	v := *bufs
	c.armWrite()
	if _, err := v.WriteTo(c.nc); err != nil {
		c.writeFailed(err)
	}
	*bufs = (*bufs)[:0]
}

// armWrite makes sure the socket's write deadline lies at least
// WriteTimeout ahead before a write. Setting a deadline costs a lock and a
// timer update, too much for every batch of small replies, so it is set a
// quarter further out and renewed only once less than WriteTimeout is
// left: a client that takes no reply is dropped between WriteTimeout and
// 1.25 times it after the write began. Called with wmu held.
func (c *conn) armWrite() {
	t := c.srv.WriteTimeout
	if t <= 0 {
		return
	}
	now := time.Now()
	if c.wlimit.Sub(now) >= t {
		return
	}
	c.wlimit = now.Add(t + t/4)
	c.nc.SetWriteDeadline(c.wlimit)
}

// writeFailed marks the connection broken: replies are dropped from now
// on. A client that took no reply within WriteTimeout is stuck or hostile:
// the connection is killed, cancelling its requests, so that everything it
// holds is released now. A client that went away (EPIPE, reset) may have
// sent DISC first, so its requests still finish and are flushed; the
// socket is only closed.
func (c *conn) writeFailed(err error) {
	c.broken = true
	if c.killed.Load() {
		return
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.srv.stats.WriteTimeouts.Add(1)
		c.log.Info("client takes no replies; closing", "write_timeout", c.srv.WriteTimeout)
		c.kill()
		return
	}
	c.log.Debug("write reply", "err", err)
	c.nc.Close()
}

var replyPool = sync.Pool{New: func() any { return new(reply) }}

func getReply(charge int64) *reply {
	r := replyPool.Get().(*reply)
	r.charge = charge
	return r
}

func putReply(r *reply) {
	*r = reply{}
	replyPool.Put(r)
}
