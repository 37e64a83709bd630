package nbdclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
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
	// ErrClosed: the client was closed.
	ErrClosed = fmt.Errorf("nbdclient: client closed: %w", syscall.EIO)
)

// conn is one transmission-phase connection: callers write requests under
// wmu, one reader goroutine (readLoop) reads replies and matches them to
// calls by cookie.
type conn struct {
	nc   net.Conn
	r    *bufio.Reader // readLoop's only
	info Info          // immutable after the handshake

	slots chan struct{} // a token per request in flight (the bound)
	wmu   sync.Mutex    // serializes request writes; guards hdr
	hdr   [requestSize]byte

	mu      sync.Mutex // guards the fields below
	pending map[uint64]*call
	cookie  uint64
	err     error         // why the connection ended; nil while it serves
	dead    chan struct{} // closed when err is set
}

// call is one request in flight. The reader goroutine owns the progress
// fields; res is written by whoever finishes the call (under conn.mu),
// before done closes, and read by the waiter after.
type call struct {
	req  request
	buf  []byte // a read's destination
	done chan struct{}
	res  result

	// progress, readLoop's only
	covered int64
	firstE  error
	extents []Extent

	// bufMu is held by the reader while it fills buf, and by the waiter to
	// mark the call abandoned, so that buf is never written after the
	// waiter returned it to its owner.
	bufMu     sync.Mutex
	abandoned bool
}

type result struct {
	err     error
	extents []Extent
}

// Extent is one run of a block status reply (flags: 1 hole, 2 zero).
type Extent struct {
	Length int64
	Flags  uint32
}

func newConn(nc net.Conn, r *bufio.Reader, info Info, maxInFlight int) *conn {
	c := &conn{nc: nc, r: r, info: info, slots: make(chan struct{}, maxInFlight),
		pending: map[uint64]*call{}, dead: make(chan struct{})}
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
	calls := c.pending
	c.pending = map[uint64]*call{}
	close(c.dead)
	c.mu.Unlock()
	c.nc.Close()
	fail := ErrDisconnected
	if errors.Is(err, ErrTimeout) || errors.Is(err, ErrClosed) {
		fail = err
	}
	for _, cl := range calls {
		cl.res = result{err: fmt.Errorf("%w (%v)", fail, err)}
		close(cl.done)
		<-c.slots
	}
}

// finish completes a call the reader got the last chunk of, unless kill
// already failed it.
func (c *conn) finish(cl *call, res result) {
	c.mu.Lock()
	if c.pending[cl.req.cookie] != cl {
		c.mu.Unlock()
		return
	}
	delete(c.pending, cl.req.cookie)
	c.mu.Unlock()
	cl.res = res
	close(cl.done)
	<-c.slots
}

// do sends one request (with payload for a write) and waits for its reply.
// ctx's cause ErrTimeout (set by Client) means the server is not
// answering: the connection is killed; another cancellation only abandons
// the call.
func (c *conn) do(ctx context.Context, req request, payload, buf []byte) result {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return result{err: ctxErr(ctx)}
	case <-c.dead:
		return result{err: c.deadErr()}
	}
	cl := &call{req: req, buf: buf, done: make(chan struct{})}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		<-c.slots
		return result{err: c.deadErr()}
	}
	c.cookie++
	cl.req.cookie = c.cookie
	c.pending[cl.req.cookie] = cl
	c.mu.Unlock()
	if sent, err := c.send(ctx, &cl.req, payload); !sent {
		c.forget(cl)
		return result{err: err}
	} else if err != nil {
		c.kill(err)
	}
	select {
	case <-cl.done: // the reader finished with buf before it closed done
		return cl.res
	case <-ctx.Done():
	}
	if errors.Is(context.Cause(ctx), ErrTimeout) {
		c.kill(ErrTimeout)
	}
	if !cl.bufMu.TryLock() {
		// Given up mid-payload: the reader is filling buf from a server that
		// may stall there. Dropping the connection is what bounds the wait.
		c.kill(errAbandoned)
		cl.bufMu.Lock()
	}
	cl.abandoned = true
	cl.bufMu.Unlock()
	return result{err: ctxErr(ctx)}
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
	if cause := context.Cause(ctx); errors.Is(cause, ErrTimeout) {
		return ErrTimeout
	}
	return fmt.Errorf("nbdclient: %w", ctx.Err())
}

// forget drops a call that was never sent.
func (c *conn) forget(cl *call) {
	c.mu.Lock()
	owned := c.pending[cl.req.cookie] == cl
	delete(c.pending, cl.req.cookie)
	c.mu.Unlock()
	if owned {
		<-c.slots
	}
}

// send writes a request header and its payload. sent is false when nothing
// was written (ctx ended first, or the connection is gone); a write that
// ctx ends half-way breaks the stream, and its error kills the connection.
func (c *conn) send(ctx context.Context, req *request, payload []byte) (sent bool, err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.sendLocked(ctx, req, payload)
}

// sendLocked is send with wmu held.
func (c *conn) sendLocked(ctx context.Context, req *request, payload []byte) (sent bool, err error) {
	if ctx.Err() != nil {
		return false, ctxErr(ctx)
	}
	if !c.alive() {
		return false, c.deadErr()
	}
	var dmu sync.Mutex // orders the deadline poke against its reset below
	writing := true
	stop := context.AfterFunc(ctx, func() {
		dmu.Lock()
		if writing {
			c.nc.SetWriteDeadline(time.Unix(1, 0))
		}
		dmu.Unlock()
	})
	req.encode(c.hdr[:])
	bufs := net.Buffers{c.hdr[:]}
	if len(payload) > 0 {
		bufs = append(bufs, payload)
	}
	_, err = bufs.WriteTo(c.nc)
	if !stop() {
		dmu.Lock()
		writing = false
		c.nc.SetWriteDeadline(time.Time{})
		dmu.Unlock()
	}
	if err != nil {
		if ctx.Err() != nil {
			return true, ctxErr(ctx)
		}
		return true, fmt.Errorf("nbdclient: send request: %w", err)
	}
	return true, nil
}

// close sends NBD_CMD_DISC, bounded by a short deadline, and kills the
// connection: calls still in flight fail with ErrClosed.
func (c *conn) close() { c.hangUp(ErrClosed) }

// hangUp sends NBD_CMD_DISC and kills the connection for reason. A request
// stuck in its write (a server that reads nothing) holds wmu: then the DISC
// is skipped, and the kill unblocks that write.
func (c *conn) hangUp(reason error) {
	if c.alive() && c.wmu.TryLock() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c.sendLocked(ctx, &request{typ: cmdDisc}, nil) // best effort: we hang up anyway
		cancel()
		c.wmu.Unlock()
	}
	c.kill(reason)
}
