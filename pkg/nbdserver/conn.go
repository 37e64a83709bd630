package nbdserver

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gdm-project/gdm/pkg/completion"
)

// conn is one client connection. Its goroutines: serve (the handshake,
// then transmit), the workers that take turns reading and serving requests
// (see worker), and the goroutines the stall watch starts for a stalled
// batch (rescue). Each field says who writes it and under which lock.
type conn struct {
	// Set once by newConn (client by Server.start), before serve starts.
	srv    *Server
	nc     net.Conn
	raw    syscall.RawConn // nc's descriptor, when it has one: for splicing and spinning
	client string          // clientKey, counted against MaxConnsPerClient
	ctx    context.Context // cancelled when the connection is killed
	cancel context.CancelFunc
	done   chan struct{} // closed by serve when everything of the connection is over

	// secure is the TLS session over nc once STARTTLS succeeded: set by the
	// handshake (serve's goroutine) before transmission starts, after which
	// it is only read. Reads and writes then go through it; nc stays the
	// socket, for deadlines and Close.
	secure *tls.Conn
	// br is set once by newConn; its contents belong to serve during the
	// handshake, then to whoever holds the reading turn (rmu).
	br *inbuf
	// log is set by newConn, and replaced once by serve, after the
	// handshake and before transmission starts any other goroutine.
	log *slog.Logger

	// Negotiated: written by the handshake (serve's goroutine), read-only
	// once transmission starts. STARTTLS resets what options set
	// (structured, metaAllocation: see forgetOptions).
	noZeroes       bool
	structured     bool
	metaAllocation bool
	metaExport     string // the export SET_META_CONTEXT named (see open)
	exp            Export
	splicer        SpliceReader // exp, when it can splice and nc is a socket
	writeSplicer   SpliceWriter // likewise, for writes to a remote leg
	pipeWriter     PipeWriter   // likewise, for writes to local files
	release        func()
	size           int64
	flags          uint16
	readOnly       bool
	// name and expRef are exp's name and exp, stored by the handshake for
	// the server's lookups (connsOf), which run on other goroutines; stored
	// with Server.mu held (publish), where Disconnect looks.
	name   atomic.Pointer[string]
	expRef atomic.Pointer[Export]
	// opening is set while the handshake opens an export, from before
	// Exports.Open until expRef is stored; dropped lists the exports a
	// Disconnect ended meanwhile, which the connection must not serve.
	// Both under Server.mu: written by beginOpen and publish (serve's
	// goroutine) and by Disconnect (disconnectOf).
	opening bool
	dropped []Export

	// spin is the socket's reader in transmission, when nc is TCP: set by
	// transmit before the first worker starts, used under rmu.
	spin *spinReader
	// budget bounds the requests in flight; it has its own lock.
	budget budget
	// inflight counts requests read and not yet served (atomic): readOne
	// adds, handle subtracts.
	inflight atomic.Int64
	// idleMu guards idleWaiting (the reader waits for a request under
	// the idle timeout) and idleArmed (its deadline is set): see idle.go.
	idleMu      sync.Mutex
	idleWaiting bool
	idleArmed   bool
	// workers counts the goroutines serving requests: transmit adds the
	// first, a reader (under rmu) the ones it starts, the stall watch
	// those of a rescue (batchRun.look, under the batch's run.mu, while
	// that batch's worker still counts).
	// Workers are reused rather than started per request, which would
	// grow (and copy) a fresh stack every time.
	workers sync.WaitGroup
	// rmu is the reading turn: whoever holds it reads requests (through
	// br and spin) and writes readDone, sawDisc and readErr.
	rmu      sync.Mutex
	readDone bool  // reading has ended for good; under rmu
	sawDisc  bool  // the client sent DISC; under rmu (transmit reads it after the workers)
	readErr  error // the error that ended reading; under rmu
	// waiting counts workers waiting for the reading turn (atomic).
	waiting atomic.Int32
	// killed is set by kill, stopped by stopReading (atomic: read by every
	// goroutine of the connection).
	killed  atomic.Bool
	stopped atomic.Bool
	// serviceNs is a moving average of the time to serve one request,
	// which sizes read batches (batchLimit) and picks the reader-serves
	// mode (readerServes). Atomic: each worker updates it after a batch
	// (load, then store: concurrent updates may lose one, which an
	// average can afford), rescue raises it.
	serviceNs atomic.Int64
	// knobs is the serving setting (knobReaderServes...): startSetting when
	// transmission begins (transmit), then chosen by tune, which the reader
	// runs (under rmu); read by every worker.
	knobs atomic.Uint32
	tune  *tuner

	// writer sends the replies; see replyWriter for its fields' locks.
	writer replyWriter

	// async is exp's asynchronous path, if it has one: set by transmit
	// before the first worker starts.
	async AsyncExport
	// asyncSplicer is async when it also splices large reads, and nc is
	// a socket (splicer is set): set with async.
	asyncSplicer AsyncSpliceReader
	// asyncs counts the asynchronous requests in flight and the reply
	// flushers running (async.go, async_reply.go): transmit waits for
	// them before it gives back what the connection holds.
	asyncs sync.WaitGroup
	// flushing is set while a reply flusher runs (atomic).
	flushing atomic.Bool
	// holds counts the completers holding this connection's replies back
	// (async_reply.go: completion.Batcher); atomic.
	holds atomic.Int32
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
		cancel: cancel,
		done:   make(chan struct{}),
		budget: budget{maxN: maxN, maxBytes: maxBytes, shared: s.shared},
	}
	c.ctx = completion.With(ctx, c) // a leg's reader holds replies for a burst
	c.br = newInbuf(nc)
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	c.writer = replyWriter{nc: nc, raw: c.raw, pipes: &s.pipes, budget: &c.budget, timeout: s.WriteTimeout, failed: c.writeFailed}
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

// writeFailed is the writer's failure (replies are dropped from now on).
// A client that took no reply within WriteTimeout is stuck or hostile: the
// connection is killed, cancelling its requests, so that everything it
// holds is released now. A client that went away (EPIPE, reset) may have
// sent DISC first, so its requests still finish and are flushed; the
// socket is only closed.
func (c *conn) writeFailed(err error) {
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
	if c.stopped.Load() {
		// Shutdown's stopReading came between start's track and here, and
		// the deadline above replaced its own: without this, Shutdown
		// would wait out the handshake timeout for an idle client.
		c.nc.SetReadDeadline(time.Now())
	}
	if err := c.handshake(); err != nil {
		var he *errHandshake
		if errors.As(err, &he) {
			c.srv.stats.HandshakeFailed[he.reason].Add(1)
			c.closeTLS(he.reason == HandshakeAborted)
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
	c.closeTLS(c.sawDisc)
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
