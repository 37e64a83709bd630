package nbdclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gdm-project/gdm/pkg/completion"
	"golang.org/x/sys/unix"
)

// Errors of a request that got no answer from the server. Both wrap EIO,
// which is what a backing device that cannot be reached means to a target.
var (
	// ErrDisconnected: the connection dropped (or broke the protocol)
	// before the reply was complete.
	ErrDisconnected = fmt.Errorf("nbdclient: connection lost: %w", syscall.EIO)
	// ErrTimeout: no complete reply within the request timeout; the
	// connection is dropped, as a server that stopped answering one
	// request is not trusted with the next.
	ErrTimeout = fmt.Errorf("nbdclient: no reply within the request timeout: %w", syscall.EIO)
	// errAbandoned is why a connection was dropped under a read given up
	// while its data was arriving.
	errAbandoned = errors.New("nbdclient: read abandoned mid-payload")
	// errAbandonedSend is why a connection was dropped under a request
	// given up while it was being written: the stream is broken.
	errAbandonedSend = errors.New("nbdclient: request abandoned mid-send")
	// ErrClosed: the client was closed.
	ErrClosed = fmt.Errorf("nbdclient: client closed: %w", syscall.EIO)
)

// conn is one transmission-phase connection. Callers queue requests; one
// writer at a time (send.go) writes everything queued in one writev, and
// one reader goroutine (readLoop) reads replies and matches them to calls
// by cookie. One watchdog timer per connection (watchdog.go) enforces the
// request timeout over all the calls in flight, so that a request costs
// no timer of its own.
type conn struct {
	nc net.Conn
	// transport is the socket under nc's TLS, or nc itself: an abort
	// closes it (see kill); immutable.
	transport net.Conn
	r         *bufio.Reader   // readLoop's only
	raw       syscall.RawConn // nc's descriptor, for splice; nil on TLS; immutable
	info      Info            // immutable after the handshake

	// splicing counts the spliced reads in flight: while there are any,
	// the reader reads headers without reading ahead (see readHead).
	splicing atomic.Int32
	// splicedLast says the last reply read was a spliced read's
	// (readHead); the reader's only.
	splicedLast bool
	// copiedAhead counts the spliced reads whose payload began in the
	// read-ahead buffer and was partly copied into the pipe (spliceFill).
	copiedAhead atomic.Uint64
	// held are the Batchers of the asynchronous calls the reader has
	// completed since it last read the socket (burst.go); the reader's
	// only.
	held []completion.Batcher
	// pad is where a spliced read's payload is copied through up to a
	// page boundary (copyToPage); the reader's only, allocated on first
	// use.
	pad []byte

	slots chan struct{} // a token per request in flight (the bound)

	// onDead runs, in a goroutine of its own, once the connection is
	// killed (the client's connDied), with how long it lived; nil for
	// none. Immutable, as is born, when it was made.
	onDead func(lived time.Duration)
	born   time.Time
	// lost is set by a kill that ends writes no flush covered, when
	// only a flush on this connection could have (lostwrites.go); nil
	// where a flush on another covers them. Immutable.
	lost *atomic.Bool

	// wmu is held by the writer while it writes a batch: whoever must know
	// that no write is under way (hangUp, a caller giving up on a request
	// being written) takes it.
	wmu      sync.Mutex
	vectored bool          // nc writes net.Buffers with one writev; immutable
	wbuf     []byte        // the batch's headers (and inlined payloads); wmu
	iov      net.Buffers   // the batch's segments; wmu
	iovOut   net.Buffers   // iov as writev consumes it (writeSegments); wmu
	written  atomic.Uint64 // cookie of the last request written in full
	// parked: the writer waits for room in the socket; progress holds a
	// token when written or parked changed (writev.go, awaitWritten).
	parked   atomic.Bool
	progress chan struct{}
	vec      []unix.Iovec       // writev's segments; wmu
	werr     error              // writevStep's error; wmu
	step     func(uintptr) bool // writevStep, as a method value made once

	mu      sync.Mutex // guards the fields below
	pending map[uint64]*call
	cookie  uint64
	queue   []*call // registered, not yet taken by a writer, in cookie order
	early   []*call // pending, replied before the writer was done with them (early.go)
	spare   []*call // the writer's other queue slice, for reuse
	writing bool    // a writer is running (or handed off to a goroutine)
	err     error   // why the connection ended; nil while it serves
	dead    chan struct{}
	wd      *time.Timer // the watchdog; nil until first armed
	wdAt    time.Time   // when it fires, if wdArmed
	wdArmed bool
	// writesDone counts the writes completed here that a later flush
	// must cover; flushedUpTo, how many of them a successful flush did
	// (lostwrites.go).
	writesDone, flushedUpTo uint64
}

// socketBuffer is the send buffer asked for on UNIX sockets (the kernel
// caps it at net.core.wmem_max).
const socketBuffer = 4 << 20

func newConn(nc net.Conn, r *bufio.Reader, info Info, maxInFlight int, onDead func(time.Duration), lost *atomic.Bool) *conn {
	c := &conn{nc: nc, transport: nc, info: info, slots: make(chan struct{}, maxInFlight),
		pending: map[uint64]*call{}, dead: make(chan struct{}), vectored: canWritev(nc),
		progress: make(chan struct{}, 1), onDead: onDead, born: time.Now(), lost: lost}
	c.step = c.writevStep
	if tc, ok := nc.(*tls.Conn); ok {
		c.transport = tc.NetConn()
	}
	c.r = c.burstReader(r)
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	if uc, ok := nc.(*net.UnixConn); ok {
		// A UNIX socket's send buffer is all that lies between a batch of
		// requests and the server; Linux's default (208 KiB) holds a fifth
		// of one 1 MiB write, which then goes out in five writes, each
		// waiting for the server to read. (TCP sizes its own buffers.)
		uc.SetWriteBuffer(socketBuffer)
	}
	go c.readLoop()
	return c
}

// alive says whether the connection still serves.
func (c *conn) alive() bool {
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

// kill ends the connection for err, once, and fails every call in flight
// with ErrDisconnected (or err itself when it is one of ours).
func (c *conn) kill(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if c.lost != nil && c.writesDone > c.flushedUpTo {
		c.lost.Store(true)
	}
	calls := c.pending
	c.pending = map[uint64]*call{}
	c.queue, c.early = nil, nil
	if c.wd != nil {
		c.wd.Stop()
	}
	close(c.dead)
	c.mu.Unlock()
	// The transport, not the TLS layer: tls.Conn.Close sends close_notify
	// first, waiting up to 5 s for room in a socket whose server may have
	// stopped reading, and the calls in flight would fail that much
	// after their timeout. hangUp says goodbye when it can.
	c.transport.Close()
	fail := ErrDisconnected
	if errors.Is(err, ErrTimeout) || errors.Is(err, ErrClosed) {
		fail = err
	}
	var orphans []*call
	for _, cl := range calls {
		cl.res = result{err: fmt.Errorf("%w (%v)", fail, err)}
		if cl.async != nil {
			orphans = append(orphans, cl)
		} else {
			cl.done <- struct{}{}
		}
		<-c.slots
	}
	if len(orphans) > 0 {
		// Not here: kill may run on the writer (holding wmu) or under a
		// fill, which failAsync must wait out (see there).
		go c.failAsync(orphans)
	}
	if c.onDead != nil {
		go c.onDead(time.Since(c.born)) // kill may run under the client's lock
	}
}

// finish completes a call the reader got the last chunk of, unless kill
// already failed it. A write answered before the writer was done with
// its payload is completed by the writer (early.go).
func (c *conn) finish(cl *call, res result) error {
	if cl.spliced && queued(cl.src) > 0 {
		// Answered before its payload was all sent: the writer may still
		// be taking from the pipe, which its owner reuses once the call
		// is done (see errRepliedEarly).
		return errRepliedEarly
	}
	c.mu.Lock()
	if c.pending[cl.req.cookie] != cl {
		c.mu.Unlock()
		return nil
	}
	c.noteDoneLocked(cl, res)
	if len(cl.payload) > 0 && c.written.Load() < cl.req.cookie {
		c.mu.Unlock()
		held := !c.awaitWritten(cl.req.cookie)
		c.mu.Lock()
		if c.pending[cl.req.cookie] != cl {
			c.mu.Unlock()
			return nil
		}
		// written again, under c.mu: the writer may have finished the
		// batch meanwhile and made its last look for held-back calls
		// (takeLateLocked, after it stores written), and one held back
		// now would be completed by no one.
		if held && c.written.Load() < cl.req.cookie {
			return c.holdBackLocked(cl, res)
		}
	}
	delete(c.pending, cl.req.cookie)
	c.mu.Unlock()
	if cl.async != nil {
		<-c.slots
		c.completeAsync(cl, res, true)
		return nil
	}
	cl.res = res
	cl.done <- struct{}{}
	<-c.slots
	return nil
}

// do sends one request (with payload for a write) and waits for its reply:
// a read's data goes into buf, or into pipe when pipe >= 0 (splice.go).
// deadline (zero: none) is the request timeout's end, which the watchdog
// enforces by killing the connection with ErrTimeout; ctx's end only
// abandons the call.
func (c *conn) do(ctx context.Context, deadline time.Time, req request, payload, buf []byte, pipe int) result {
	if pipe >= 0 {
		if c.raw == nil {
			return result{err: ErrNoSplice}
		}
		c.splicing.Add(1)
		defer c.splicing.Add(-1)
	}
	if err := c.acquire(ctx, deadline); err != nil {
		return result{err: err}
	}
	cl := newCall()
	cl.req, cl.payload, cl.buf, cl.pipe, cl.deadline = req, payload, buf, pipe, deadline
	lead, err := c.enqueue(cl)
	if err != nil {
		<-c.slots
		return result{err: err}
	}
	if lead {
		if ctx.Done() == nil {
			c.writeLoop(true)
		} else {
			go c.writeLoop(false) // a writer must not be stuck under a caller that may leave
		}
	}
	select {
	case <-cl.done: // the reader finished with buf before it sent the token
		res := cl.res
		if !c.alive() {
			c.quiesce(cl) // a kill may have failed it mid-write or mid-fill
			return res
		}
		if c.written.Load() >= cl.req.cookie { // else the writer may still look at it
			callPool.Put(cl)
		}
		return res
	case <-ctx.Done():
	}
	if !c.unqueue(cl) {
		c.letGo(cl)
	}
	return result{err: ctxErr(ctx)}
}

// acquire takes a slot for one request: at once when one is free, else
// waiting no longer than ctx and the deadline allow (only this slow path
// pays for a timer).
func (c *conn) acquire(ctx context.Context, deadline time.Time) error {
	if ctx.Err() != nil {
		return ctxErr(ctx)
	}
	select {
	case c.slots <- struct{}{}:
		return nil
	default:
	}
	ctx, cancel := timed(ctx, deadline)
	defer cancel()
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctxErr(ctx)
	case <-c.dead:
		return c.deadErr()
	}
}

// letGo gives up on a call that was taken by the writer, making sure
// that neither the writer nor the reader uses its buffers any more: a
// request being written breaks the stream (the connection is dropped,
// which ends the write); a read whose data is arriving is dropped
// likewise, since the server may stall there.
func (c *conn) letGo(cl *call) {
	if c.written.Load() < cl.req.cookie {
		c.kill(errAbandonedSend) // a no-op when already dead
		c.wmu.Lock()             // held by a writer for as long as it writes a batch
		c.wmu.Unlock()
	}
	if !cl.bufMu.TryLock() {
		c.kill(errAbandoned)
		cl.bufMu.Lock()
	}
	cl.abandoned = true
	cl.bufMu.Unlock()
}

// quiesce waits, on a dead connection, until the writer is done with its
// batch and the reader with cl's buffer, and marks cl abandoned so that
// the reader never touches its buffer again.
func (c *conn) quiesce(cl *call) {
	c.wmu.Lock() // held by a writer for as long as it writes a batch
	c.wmu.Unlock()
	cl.bufMu.Lock()
	cl.abandoned = true
	cl.bufMu.Unlock()
}

func (c *conn) deadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(c.err, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("%w (%v)", ErrDisconnected, c.err)
}

func ctxErr(ctx context.Context) error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, ErrTimeout):
		return ErrTimeout
	case errors.Is(cause, ErrClosed):
		return ErrClosed
	}
	return fmt.Errorf("nbdclient: %w", ctx.Err())
}

// timed bounds ctx by a request's deadline, with ErrTimeout as the cause.
// Only slow paths (a wait for a slot, a redial) use it.
func timed(ctx context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	if deadline.IsZero() {
		return ctx, func() {}
	}
	return context.WithDeadlineCause(ctx, deadline, ErrTimeout)
}

// close sends NBD_CMD_DISC, bounded by a short deadline, and kills the
// connection: calls still in flight fail with ErrClosed.
func (c *conn) close() { c.hangUp(ErrClosed) }

// hangUp sends NBD_CMD_DISC and kills the connection for reason. A batch
// stuck in its write (a server that reads nothing) holds wmu: then the
// DISC is skipped, and the kill unblocks that write.
func (c *conn) hangUp(reason error) {
	if c.alive() && c.wmu.TryLock() {
		var h [requestSize]byte
		(&request{typ: cmdDisc}).encode(h[:])
		c.nc.SetWriteDeadline(time.Now().Add(hangUpWait))
		if _, err := c.nc.Write(h[:]); err == nil { // best effort: we hang up anyway
			c.closeNotify()
		}
		c.wmu.Unlock()
	}
	c.kill(reason)
}

// hangUpWait bounds each of hangUp's goodbyes: the DISC and close_notify.
const hangUpWait = time.Second

// closeNotify ends a TLS session politely after the DISC went out: the
// close_notify alert tells the server the session ended here, not by a
// truncation. crypto/tls gives the alert 5 s of its own; a server that
// stopped reading gets hangUpWait, then the transport is closed under it.
func (c *conn) closeNotify() {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return
	}
	stop := time.AfterFunc(hangUpWait, func() { c.transport.Close() })
	tc.CloseWrite()
	stop.Stop()
}
