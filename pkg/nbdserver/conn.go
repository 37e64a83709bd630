package nbdserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// conn is one client connection.
type conn struct {
	srv    *Server
	nc     net.Conn
	br     *inbuf
	log    *slog.Logger
	client string // clientKey, counted against MaxConnsPerClient; immutable

	ctx    context.Context // cancelled when the connection is killed
	cancel context.CancelFunc
	done   chan struct{} // closed when everything of the connection is over

	// Negotiated; written by the handshake, read-only afterwards.
	noZeroes       bool
	structured     bool
	metaAllocation bool
	name           atomic.Pointer[string]
	expRef         atomic.Pointer[Export] // exp, for the server's lookups
	exp            Export
	splicer        SpliceReader    // exp, when it can splice and nc is a socket
	spin           *spinReader     // the socket's reader in transmission, when nc is TCP
	raw            syscall.RawConn // nc's descriptor, when it has one: for splicing and spinning
	release        func()
	size           int64
	flags          uint16
	readOnly       bool

	inflight atomic.Int64
	budget   budget
	// Workers take turns reading (see transmit). Reusing them matters: a
	// goroutine per request grew (and copied) a fresh stack every time,
	// 17% of the CPU in a 4 KiB read profile.
	workers  sync.WaitGroup
	rmu      sync.Mutex // the reading turn: guards br, readDone, sawDisc
	waiting  atomic.Int32
	readDone bool
	sawDisc  bool
	killed   atomic.Bool
	stopped  atomic.Bool
	// serviceNs is a moving average of the time to serve one request,
	// which sizes read batches (batchLimit).
	serviceNs atomic.Int64
	// knobs is the serving setting (knobInline...), chosen by tune, which
	// the reader runs (under rmu); read by every worker.
	knobs atomic.Uint32
	tune  *tuner

	// Replies: whoever finishes a request queues its reply and, if no one
	// is writing, becomes the writer and sends everything queued with one
	// writev (flat combining). No goroutine hand-off per reply, and replies
	// that finish together go out together.
	qmu     sync.Mutex // guards pending, spare
	pending []*reply
	spare   []*reply
	wmu     sync.Mutex // held by the one writing to the socket
	vec     net.Buffers
	broken  bool      // guarded by wmu: a write failed, drop further replies
	wlimit  time.Time // guarded by wmu: the write deadline set on nc (see armWrite)
	// readErr is the error that ended reading; guarded by rmu.
	readErr error
}

func newConn(s *Server, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	maxN, maxBytes := s.MaxInFlight, s.MaxInFlightBytes
	if maxN <= 0 {
		maxN = 128
	}
	if maxBytes <= 0 {
		maxBytes = 128 << 20
	}
	c := &conn{
		srv:    s,
		nc:     nc,
		log:    s.log().With("remote", nc.RemoteAddr().String()),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		budget: budget{maxN: maxN, maxBytes: maxBytes, shared: s.shared},
	}
	c.br = newInbuf(nc)
	c.knobs.Store(knobInline | knobSplice | knobSpin)
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	if uc, ok := nc.(*net.UnixConn); ok {
		// A UNIX socket's send buffer is all that lies between the
		// server's replies and the client; Linux's default (208 KiB) holds
		// a fifth of one 1 MiB read, so the two would take turns waking
		// each other. The kernel caps this at net.core.wmem_max. (TCP
		// sizes its own buffers; setting one would turn that off.)
		uc.SetWriteBuffer(socketBuffer)
	}
	return c
}

func (c *conn) export() Export {
	if p := c.expRef.Load(); p != nil {
		return *p
	}
	return nil
}

// releaseExport gives back the export the handshake opened, if it did.
func (c *conn) releaseExport() {
	if c.release != nil {
		c.release()
	}
}

func (c *conn) exportName() string {
	if p := c.name.Load(); p != nil {
		return *p
	}
	return ""
}

// kill ends the connection now: the socket closes, waiting requests see
// their context cancelled.
func (c *conn) kill() {
	c.killed.Store(true)
	c.nc.Close() // first, so no reply of a cancelled request gets out
	c.cancel()
	c.budget.close()
}

// setReadDeadline sets the idle deadline for the reading turn, unless a
// shutdown has begun: stopReading sets stopped before its own (immediate)
// deadline, so checking stopped after setting ours means one of the two
// sees the other, and the shutdown's deadline is never overwritten.
func (c *conn) setReadDeadline(t time.Time) {
	c.nc.SetReadDeadline(t)
	if c.stopped.Load() {
		c.nc.SetReadDeadline(time.Now())
	}
}

// stopReading asks for a graceful end: no more requests are read, the ones
// read are finished and answered.
func (c *conn) stopReading() {
	c.stopped.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

func (c *conn) serve() {
	defer close(c.done)
	defer c.cancel()
	defer c.srv.untrack(c)
	defer c.nc.Close()
	defer c.br.release() // after every request is done (transmit waits for them)
	timeout := c.srv.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	// Runs first: the defers above then release what the connection held.
	defer c.recovered("handshake or transmit")
	// The export, once the handshake opened it, whether or not the
	// handshake then completes (its reply may find the client gone).
	defer c.releaseExport()
	c.nc.SetDeadline(time.Now().Add(timeout))
	if err := c.handshake(); err != nil {
		var he *errHandshake
		if errors.As(err, &he) {
			c.srv.stats.HandshakeFailed[he.reason].Add(1)
		}
		if !c.stopped.Load() {
			c.log.Debug("handshake ended", "err", err)
		}
		return
	}
	c.nc.SetDeadline(time.Time{})
	if c.stopped.Load() { // shutdown began during the handshake
		c.nc.SetReadDeadline(time.Now())
	}
	c.log = c.log.With("export", c.exportName())
	share := c.srv.joinShare(c.exp)
	defer c.srv.leaveShare(c.exp, share) // after transmit: all given back by then
	c.budget.setShare(share)
	c.transmit()
}

// request is one transmission request header.
type request struct {
	flags  uint16
	typ    uint16
	cookie uint64
	offset uint64
	length uint32
}

// socketBuffer is the send buffer asked for on UNIX sockets.
const socketBuffer = 4 << 20

// recovered, deferred by each goroutine that serves a connection, turns a
// panic into the end of that connection alone: it is logged with its
// stack, counted, and the connection killed, so that its other goroutines
// give up whatever they wait for (the socket, the budgets, the export's
// context) and serve returns, releasing everything. A panic in a request's
// own handling is answered EIO instead (handle); this is for the rest.
func (c *conn) recovered(where string) {
	if p := recover(); p != nil {
		c.panicked(where, p)
	}
}

// panicked ends the connection after panic p in where.
func (c *conn) panicked(where string, p any) {
	c.srv.stats.ConnPanics.Add(1)
	c.log.Error("panic serving a connection; closing it", "in", where, "panic", p, "stack", string(debug.Stack()))
	c.kill()
}
