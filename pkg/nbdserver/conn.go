package nbdserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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

// transmit serves requests until DISC, EOF, shutdown or a protocol error.
// Workers take turns as the reader (leader/followers, as nbdkit's threads
// do): one holds rmu and reads a request, hands the reading on, then does
// the request and sends its reply itself. No goroutine hand-off per request,
// and worker stacks, grown once, are reused. When transmit returns, every
// reply has been written (or dropped on a dead socket).
func (c *conn) transmit() {
	c.srv.transmitting.Add(1)
	defer c.srv.transmitting.Add(-1)
	if _, ok := c.nc.(*net.TCPConn); ok && c.raw != nil {
		c.spin = newSpinReader(c.raw, &c.srv.transmitting, &c.srv.stats)
		c.br.src = c.spin
	}
	c.workers.Add(1)
	c.worker()
	c.workers.Wait()
	c.dropPending()
	c.budget.settle()
	if c.sawDisc || c.stopped.Load() {
		// DISC or a shutdown: what was written must be durable.
		if err := c.exp.Flush(c.ctx); err != nil && !c.killed.Load() {
			c.log.Warn("flush at disconnect", "err", err)
		}
	}
}

// work is one request read off the socket.
type work struct {
	r       request
	payload []byte   // a write's data: in pooled, or in the read buffer
	pooled  *[]byte  // returned to the pool once done
	pinned  *inchunk // unpinned once done
	charge  int64
}

// done gives back the payload's memory.
func (w *work) done() {
	if w.pooled != nil {
		putBuf(w.pooled)
	}
	if w.pinned != nil {
		w.pinned.unpin()
	}
}

// socketBuffer is the send buffer asked for on UNIX sockets.
const socketBuffer = 4 << 20

// maxBatch bounds the requests one worker takes per read turn.
const maxBatch = 16

// batchBudget is how long a batch should take to serve. Requests in a batch
// are served one after another, so a later one waits for the earlier ones;
// the batch is sized from the measured service time (serviceNs) to keep
// that wait near this bound. A slow backend thus gets batches of one.
const batchBudget = 100 * time.Microsecond

// inlineBelow is the service time under which the reader serves its batch
// itself and reads on afterwards, instead of handing the read turn to
// another worker. Handing over wakes a goroutine, often on another OS
// thread, and that costs a few microseconds: more than a 4 KiB pwrite to
// the page cache. Work that cheap gains nothing from running in parallel on
// one connection; a client wanting more uses more connections (the export
// advertises CAN_MULTI_CONN).
const inlineBelow = 10 * time.Microsecond

// worker reads requests when it is its turn, then serves them.
//
// A worker takes more than one request per turn when more are already in
// the read buffer and the backend is fast (batchLimit); the batch's replies
// go out with one writev. While the backend is very fast (inlineBelow) it
// then serves the batch itself and reads again: one goroutine per
// connection, no hand-offs. Otherwise it first makes sure another worker
// will read next (leader/followers, as nbdkit's threads do), starting one
// when none is waiting: workers never outnumber requests in flight (which
// the budget bounds) by more than two. Surplus workers leave when the
// backend is fast again.
func (c *conn) worker() {
	defer c.workers.Done()
	defer c.recovered("worker")
	run := &batchRun{c: c}
	c.srv.stalls.add(run)
	defer c.srv.stalls.remove(run)
	for {
		if c.inline() && c.waiting.Load() > 0 {
			return // another worker reads next; one is enough
		}
		n, inline := c.readTurn(run)
		if n == 0 {
			return
		}
		c.serveBatch(run, n, inline)
	}
}

// readTurn takes the reading turn, reads a batch into run.items and hands
// the turn on. It returns how many it read (0: reading has ended) and
// whether the batch is to be served inline.
//
// rmu is unlocked by a defer, so that a panic while reading does not leave
// the other workers waiting for the turn forever. The panic is recovered
// here and the connection killed before the turn is given up: the next
// worker then sees killed and leaves, rather than read on from a buffer
// the panic may have left half updated.
func (c *conn) readTurn(run *batchRun) (n int, inline bool) {
	c.waiting.Add(1)
	c.rmu.Lock()
	defer func() {
		if p := recover(); p != nil {
			c.panicked("reading requests", p)
			n = 0
		}
		c.rmu.Unlock()
	}()
	c.waiting.Add(-1)
	if c.readDone || c.killed.Load() {
		return 0, false
	}
	// Serving inline, this worker is the only reader: it does its
	// batch, then reads again. Payloads are then left in the read
	// buffer (no copy): each batch is done before the next read, so
	// the buffer is seldom pinned when it fills and a stall pins at
	// most one old chunk.
	inline = c.inline()
	if c.spin != nil {
		c.spin.on = inline
	}
	idle := c.srv.IdleTimeout > 0 && c.inflight.Load() == 0 && c.br.Buffered() < requestHeaderSize
	if idle {
		c.setReadDeadline(time.Now().Add(c.srv.IdleTimeout))
	}
	w, ok := c.readOne(true, inline)
	if idle {
		c.setReadDeadline(time.Time{})
	}
	if !ok {
		if idle && errors.Is(c.readErr, os.ErrDeadlineExceeded) && !c.stopped.Load() {
			c.srv.stats.IdleTimeouts.Add(1)
			c.log.Info("idle connection closed", "after", c.srv.IdleTimeout)
		}
		return 0, false
	}
	run.items[0] = w
	n = 1
	for limit := c.batchLimit(); n < limit && c.br.Buffered() >= requestHeaderSize; n++ {
		if run.items[n], ok = c.readOne(false, inline); !ok {
			break
		}
	}
	if !inline && c.waiting.Load() == 0 && !c.readDone {
		c.workers.Add(1)
		go c.worker()
	}
	return n, inline
}

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

// inline reports whether requests are cheap enough to serve in the reader.
func (c *conn) inline() bool {
	return c.serviceNs.Load() < int64(inlineBelow)
}

// batchLimit is how many requests the reader may take in one turn now.
func (c *conn) batchLimit() int {
	ns := c.serviceNs.Load()
	if ns <= 0 {
		return maxBatch
	}
	return int(min(maxBatch, max(1, int64(batchBudget)/ns)))
}

// endReading ends the reading turns for good; readOne's answer then.
func (c *conn) endReading() (work, bool) {
	c.readDone = true
	return work{}, false
}

// serveBatch does the n requests in run.items in order, then queues their
// replies together. It times the batch to keep serviceNs current; the
// server's stall watch sees the batch while it runs.
func (c *conn) serveBatch(run *batchRun, n int, sole bool) {
	run.begin(&c.srv.stalls, n, sole)
	start := time.Now()
	var reps [maxBatch]*reply
	served := 0
	for w := run.claim(n); w != nil; w = run.claim(n) {
		reps[served] = c.handle(w)
		served++
	}
	run.end()
	if served > 0 {
		// A moving average with weight 1/8: one slow request does not
		// end batching; a backend that has become slow does within a
		// few batches.
		per := int64(time.Since(start)) / int64(served)
		old := c.serviceNs.Load()
		c.serviceNs.Store(old + (per-old)/8)
		c.queue(reps[:served])
		clear(reps[:served])
	}
}

// readOne reads the next request and its payload. It returns false when
// reading must end: DISC, EOF, shutdown, or a protocol error (readDone is
// then set). With wait false it returns false, consuming nothing, rather
// than wait for the in-flight budget. With take, a write's payload up to
// maxTake stays in the read buffer. Called with rmu held.
func (c *conn) readOne(wait, take bool) (work, bool) {
	h, err := c.br.Peek(requestHeaderSize)
	if err != nil {
		c.readErr = err
		if !c.stopped.Load() && !c.killed.Load() && !errors.Is(err, io.EOF) {
			c.log.Debug("read request", "err", err)
		}
		return c.endReading()
	}
	if m := binary.BigEndian.Uint32(h[0:]); m != magicRequest {
		c.srv.stats.ProtocolErrors.Add(1)
		c.log.Warn("bad request magic; closing", "magic", fmt.Sprintf("%#x", m))
		return c.endReading()
	}
	r := request{
		flags:  binary.BigEndian.Uint16(h[4:]),
		typ:    binary.BigEndian.Uint16(h[6:]),
		cookie: binary.BigEndian.Uint64(h[8:]),
		offset: binary.BigEndian.Uint64(h[16:]),
		length: binary.BigEndian.Uint32(h[24:]),
	}
	var charge int64
	if (r.typ == cmdRead || r.typ == cmdWrite) && r.length <= MaxBlockSize {
		charge = int64(r.length)
	}
	if r.typ != cmdDisc {
		if wait {
			if !c.budget.acquire(charge) {
				return c.endReading()
			}
		} else if !c.budget.tryAcquire(charge) {
			return work{}, false
		}
	}
	c.br.Discard(requestHeaderSize)
	// After a large write, expect another: read its header alone (see
	// inbuf.lean).
	c.br.lean = r.typ == cmdWrite && r.length > maxTake
	if r.typ == cmdDisc {
		c.sawDisc = true
		return c.endReading()
	}
	w := work{r: r, charge: charge}
	if r.typ == cmdWrite {
		if r.length > MaxBlockSize {
			// Too long to take: drop the payload if that is cheap enough,
			// answer EINVAL; else we cannot find the next request safely,
			// so close.
			if r.length > maxPayloadSkip {
				c.srv.stats.ProtocolErrors.Add(1)
				c.log.Warn("write payload too long to skip; closing", "length", r.length)
				c.budget.release(0)
				return c.endReading()
			}
			if _, err := io.CopyN(io.Discard, c.br, int64(r.length)); err != nil {
				c.budget.release(0)
				return c.endReading()
			}
		} else {
			// The payload holds its bytes of both budgets while it
			// arrives: a client that sends a header and then trickles or
			// withholds the payload is dropped after PayloadTimeout, or a
			// few could hold the shared bound and stall every client.
			var err error
			slow := c.srv.PayloadTimeout > 0 && c.br.Buffered() < int(r.length)
			if slow {
				c.setReadDeadline(time.Now().Add(c.srv.PayloadTimeout))
			}
			if take && r.length <= maxTake {
				w.payload, w.pinned, err = c.br.Take(int(r.length))
			} else {
				w.pooled = getBuf(int(r.length))
				w.payload = *w.pooled
				_, err = io.ReadFull(c.br, w.payload)
			}
			if slow {
				c.setReadDeadline(time.Time{})
			}
			if err != nil {
				if slow && errors.Is(err, os.ErrDeadlineExceeded) && !c.stopped.Load() {
					c.srv.stats.PayloadTimeouts.Add(1)
					c.log.Info("write payload did not arrive; closing", "payload_timeout", c.srv.PayloadTimeout, "length", r.length)
				}
				w.done()
				c.budget.release(charge)
				return c.endReading()
			}
		}
	}
	c.inflight.Add(1)
	return w, true
}

// handle does one request and returns its reply. A panic is an EIO reply.
func (c *conn) handle(w *work) (rep *reply) {
	defer c.inflight.Add(-1)
	r := w.r
	rep = getReply(w.charge)
	defer func() {
		if p := recover(); p != nil {
			c.srv.stats.Panics.Add(1)
			c.log.Error("panic serving a request", "panic", p, "cmd", r.typ, "stack", string(debug.Stack()))
			if rep.pooled != nil {
				putBuf(rep.pooled)
			}
			if rep.pipe != nil {
				c.srv.pipes.discard(rep.pipe) // it may hold data: never sent after this header
			}
			rep.pooled, rep.data, rep.pipe, rep.pipeLen = nil, nil, nil, 0
			c.refuse(rep, r, errIO) // in the form this command's errors take
		}
		w.done()
	}()
	c.do(r, w.payload, rep)
	return rep
}

// do serves one request and fills in its reply: first check, which
// refuses what may not be served (see cmdRules), then the command's
// handler, which can assume a valid request.
func (c *conn) do(r request, payload []byte, rep *reply) {
	if errno := c.check(r); errno != 0 {
		c.refuse(rep, r, errno)
		return
	}
	switch r.typ {
	case cmdRead:
		c.serveRead(r, rep)
	case cmdWrite:
		c.serveWrite(r, payload, rep)
	case cmdFlush:
		c.serveFlush(r, rep)
	case cmdTrim:
		c.serveTrim(r, rep)
	case cmdWriteZeroes:
		c.serveWriteZeroes(r, rep)
	case cmdCache:
		c.serveCache(r, rep)
	case cmdBlockStatus:
		c.serveBlockStatus(r, rep)
	default:
		// check passed a command that has no handler: a bug in gdm, not
		// the client's. handle answers the panic with EIO and logs it.
		panic(fmt.Sprintf("nbdserver: command %d passed check but has no handler", r.typ))
	}
}

// spliceRead puts a large read's data in a pipe for the writer to splice
// into the socket (see SpliceReader). It reports false, having done
// nothing the client can see, when the read is to be done with ReadAt.
func (c *conn) spliceRead(rep *reply, off, n int64) (bool, error) {
	if c.splicer == nil || n < spliceMin || n > pipeSize {
		return false, nil
	}
	p := c.srv.pipes.get()
	if p == nil {
		return false, nil
	}
	if n > int64(p.size) {
		c.srv.pipes.put(p)
		return false, nil
	}
	if err := c.splicer.SpliceRead(c.ctx, p.w, off, n); err != nil {
		c.srv.pipes.discard(p) // it may hold part of the range
		if errors.Is(err, ErrNoSplice) {
			return false, nil
		}
		return false, err
	}
	rep.pipe, rep.pipeLen = p, int(n)
	return true, nil
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
