package nbdclient

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
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

	// onDead runs once, in kill, under mu and before the connection is
	// seen dead (the client's connDied), with how long it lived; nil for
	// none. It may take only a leaf lock. onGone runs once, in kill, after
	// the connection is seen dead and mu is let go (the client's
	// connGone): whoever it tells looks, and must find the connection
	// dead. Both immutable, as is born, when it was made.
	onDead func(lived time.Duration)
	onGone func()
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

func newConn(nc net.Conn, r *bufio.Reader, info Info, maxInFlight int, onDead func(time.Duration), onGone func(), lost *atomic.Bool) *conn {
	c := &conn{nc: nc, transport: nc, info: info, slots: make(chan struct{}, maxInFlight),
		pending: map[uint64]*call{}, dead: make(chan struct{}), vectored: canWritev(nc),
		progress: make(chan struct{}, 1), onDead: onDead, onGone: onGone, born: time.Now(), lost: lost}
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
	if c.onDead != nil {
		c.onDead(time.Since(c.born))
	}
	close(c.dead)
	c.mu.Unlock()
	if c.onGone != nil {
		c.onGone()
	}
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
	unwritten := len(cl.payload) > 0 && c.written.Load() < cl.req.cookie
	if unwritten && slices.Contains(c.queue, cl) {
		// No writer has taken it: the server answered a request it was
		// never sent (a guessed cookie). Refused before the wait below,
		// as its caller may take it out of the queue meanwhile, and no
		// write of it would end that wait.
		c.mu.Unlock()
		return protoErr("reply for cookie %d, a request not sent yet", cl.req.cookie)
	}
	c.noteDoneLocked(cl, res)
	if unwritten {
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

func (c *conn) deadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(c.err, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("%w (%v)", ErrDisconnected, c.err)
}
