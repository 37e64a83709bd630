package nbdserver

import (
	"sync"
	"sync/atomic"
)

// budget bounds a connection's requests in flight, by count and by bytes,
// and takes their bytes from its export's share of the server's bound and
// from the server's bound as well. The reader blocks in acquire when a
// bound is reached; the writer releases. One request larger than a byte
// bound still runs, alone, so none waits forever.
type budget struct {
	// Set once by newConn, before the connection's goroutines start.
	maxN     int
	maxBytes int64
	// shared is the server-wide bound on bytes in flight (nil: none).
	shared *sharedBudget

	mu     sync.Mutex // guards n, bytes, closed, sleeps and share's setting
	cond   *sync.Cond // on mu: made by init, under mu, on first use
	n      int        // requests in flight; under mu
	bytes  int64      // their bytes; under mu
	closed bool       // set by close, under mu: waiters give up
	// sleeps counts the times a reader went to wait on cond (tests watch
	// it to see a reader blocked in acquire). Only the waiting path
	// touches it, with mu held.
	sleeps int
	// share is the bound on bytes in flight of the connection's export,
	// across its connections (nil: none; see Server.joinShare). Set once
	// with mu held, after the handshake and before any request is read;
	// the connection's goroutines read it without mu since they start (or
	// read requests) after that, close reads it with mu.
	share *sharedBudget
	// dead is closed, for waiters on share and shared (atomic: they
	// wait under those bounds' locks, not mu).
	dead atomic.Bool
}

func (b *budget) init() {
	if b.cond == nil {
		b.cond = sync.NewCond(&b.mu)
	}
}

// acquire waits until a request of bytes fits both bounds and takes it; it
// returns false once the budget is closed (the connection is killed).
//
// The export's share is taken before the server's bound: a reader that
// waits for its export's share then holds nothing of the server's bound,
// so the readers of a stuck export, however many, hold at most their share
// of it. No wait can deadlock: the server's bound is held only by requests
// past every wait (in flight), and each bound lets one request in when it
// has nothing in flight.
func (b *budget) acquire(bytes int64) bool {
	if !b.acquireLocal(bytes) {
		return false
	}
	if b.share != nil && !b.share.acquire(bytes, &b.dead) {
		b.releaseLocal(bytes)
		return false
	}
	if b.shared != nil && !b.shared.acquire(bytes, &b.dead) {
		if b.share != nil {
			b.share.release(bytes)
		}
		b.releaseLocal(bytes)
		return false
	}
	return true
}

func (b *budget) acquireLocal(bytes int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	for !b.closed && b.full(bytes) {
		b.sleeps++
		b.cond.Wait()
	}
	if b.closed {
		return false
	}
	b.n++
	b.bytes += bytes
	return true
}

// full reports whether taking one more request of bytes would pass a bound.
// One request is always let in, however large, so that none waits forever.
func (b *budget) full(bytes int64) bool {
	return b.n >= b.maxN || (b.n > 0 && b.bytes+bytes > b.maxBytes)
}

// tryAcquire is acquire without waiting.
func (b *budget) tryAcquire(bytes int64) bool {
	b.mu.Lock()
	if b.closed || b.full(bytes) {
		b.mu.Unlock()
		return false
	}
	b.n++
	b.bytes += bytes
	b.mu.Unlock()
	if b.share != nil && !b.share.tryAcquire(bytes) {
		b.releaseLocal(bytes)
		return false
	}
	if b.shared != nil && !b.shared.tryAcquire(bytes) {
		if b.share != nil {
			b.share.release(bytes)
		}
		b.releaseLocal(bytes)
		return false
	}
	return true
}

// release gives back what acquire took, in the reverse order: a reader
// woken on one bound then finds room in the next one rather than wait
// again (and be counted as waiting) for bytes about to come back.
func (b *budget) release(bytes int64) {
	if b.shared != nil {
		b.shared.release(bytes)
	}
	if b.share != nil {
		b.share.release(bytes)
	}
	b.releaseLocal(bytes)
}

func (b *budget) releaseLocal(bytes int64) {
	b.mu.Lock()
	b.init()
	b.n--
	b.bytes -= bytes
	b.mu.Unlock()
	b.cond.Signal()
}

// settle gives back to the shared bounds whatever the connection still
// holds once all of its goroutines are done: nothing, unless a panic cut a
// request short between taking its bytes and handing them on (a request
// read in a batch that never ran, a rescued request that never got its
// reply queued). The bytes would otherwise be lost to every client.
func (b *budget) settle() {
	b.mu.Lock()
	left := b.bytes
	b.n, b.bytes = 0, 0
	b.mu.Unlock()
	if left == 0 {
		return
	}
	if b.shared != nil {
		b.shared.release(left)
	}
	if b.share != nil {
		b.share.release(left)
	}
}

// setShare sets the connection's export's share of the bound, before the
// connection's first request is read.
func (b *budget) setShare(share *sharedBudget) {
	b.mu.Lock()
	b.share = share
	b.mu.Unlock()
}

// close makes every waiter, on this budget or the shared ones, give up.
func (b *budget) close() {
	b.mu.Lock()
	b.init()
	b.closed = true
	share := b.share
	b.mu.Unlock()
	b.dead.Store(true)
	b.cond.Broadcast()
	if share != nil {
		share.wake()
	}
	if b.shared != nil {
		b.shared.wake()
	}
}

// sharedBudget bounds bytes in flight across connections: the server has
// one for all of its connections (Server.MaxInFlightBytesTotal), and each
// export one for the connections serving it, its share of the server's
// (Server.MaxInFlightBytesPerExport). The per-connection budgets alone let
// N clients pin N times their bound (eight clients with unread 32 MiB
// reads pinned 834 MB).
//
// The price of a bound across connections: requests stuck in flight (a
// suspended device, a hung backend) hold their bytes, and past the bound
// the readers of every connection wait until they move. The export's
// share confines that to the export's own connections: one stuck export
// holds at most its share, and the rest of the server's bound stays for
// the others. Two or more stuck exports can still fill the server's bound
// between them; the bounds are flags.
//
// It is an atomic counter rather than a mutex, since every read and write
// of every connection passes here; the mutex and condition are only for
// readers that must wait, and a release takes them only when one does.
type sharedBudget struct {
	// Set once by newSharedBudget.
	max   int64          // bound in bytes; <= 0: none
	waits *atomic.Uint64 // counts acquires that had to wait
	// idle, when set, is called when bytes falls back to 0.
	idle func()

	// Atomic: every acquire and release of every connection.
	bytes   atomic.Int64 // bytes in flight
	peak    atomic.Int64 // high-water mark, reset by the memory releaser
	waiters atomic.Int32 // acquires waiting on cond; changed under mu

	mu   sync.Mutex // held by a waiter while it tries, and by wake
	cond sync.Cond  // on mu: waiters wait for bytes to come back
}

func newSharedBudget(max int64, waits *atomic.Uint64, idle func()) *sharedBudget {
	g := &sharedBudget{max: max, waits: waits, idle: idle}
	g.cond.L = &g.mu
	return g
}

// tryAcquire takes n bytes if they fit, or if nothing is in flight (so a
// request larger than the bound still runs, alone).
func (g *sharedBudget) tryAcquire(n int64) bool {
	if n == 0 {
		return true
	}
	for {
		cur := g.bytes.Load()
		if g.max > 0 && cur > 0 && cur+n > g.max {
			return false
		}
		if g.bytes.CompareAndSwap(cur, cur+n) {
			if cur+n > g.peak.Load() {
				g.peak.Store(cur + n) // racy by design: a rough high-water mark
			}
			return true
		}
	}
}

// acquire waits until n bytes fit, or until dead is set.
//
// No wake-up is lost: a waiter counts itself in waiters before it tries,
// under mu; a releaser subtracts first and then, seeing a waiter, takes mu
// before it broadcasts, so the waiter has either seen the bytes given back
// or is waiting on cond by then.
func (g *sharedBudget) acquire(n int64, dead *atomic.Bool) bool {
	if g.tryAcquire(n) {
		return true
	}
	g.waits.Add(1)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.waiters.Add(1)
	defer g.waiters.Add(-1)
	for !g.tryAcquire(n) {
		if dead.Load() {
			return false
		}
		g.cond.Wait()
	}
	return true
}

func (g *sharedBudget) release(n int64) {
	if n == 0 {
		return
	}
	left := g.bytes.Add(-n)
	if g.waiters.Load() > 0 {
		g.wake()
	}
	if left == 0 && g.idle != nil {
		g.idle()
	}
}

// wake makes every waiter look again (at the bytes, or at its dead flag).
func (g *sharedBudget) wake() {
	g.mu.Lock()
	g.mu.Unlock() // empty: only to order this wake after a waiter's check (see acquire)
	g.cond.Broadcast()
}

// exportShare is one export's share of the server's bound on bytes in
// flight, with the connections using it.
type exportShare struct {
	budget *sharedBudget
	conns  int // connections serving the export; guarded by Server.mu
}

// joinShare returns exp's share of the bound on bytes in flight for a
// connection that starts serving exp, or nil when exports have none. The
// share is made for exp's first connection and dropped by leaveShare when
// its last one ends, so the server keeps one only for exports being
// served. Exports are compared by identity, as connsOf does: a renamed
// export keeps its share. Called once per connection, after the handshake:
// the request path then uses the share without looking it up.
func (s *Server) joinShare(exp Export) *sharedBudget {
	if per := s.MaxInFlightBytesPerExport; per <= 0 || s.MaxInFlightBytesTotal > 0 && per >= s.MaxInFlightBytesTotal {
		return nil // a share as large as the whole bound bounds nothing more
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.shares[exp]
	if sh == nil {
		if s.shares == nil {
			s.shares = map[Export]*exportShare{}
		}
		sh = &exportShare{budget: newSharedBudget(s.MaxInFlightBytesPerExport, &s.stats.ExportInFlightWaits, nil)}
		s.shares[exp] = sh
	}
	sh.conns++
	return sh.budget
}

// leaveShare is called when a connection given share by joinShare(exp)
// ends, having given back all it held; the last one drops the share.
func (s *Server) leaveShare(exp Export, share *sharedBudget) {
	if share == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.shares[exp]
	if sh == nil || sh.budget != share {
		panic("nbdserver: leaving an export's share never joined")
	}
	if sh.conns--; sh.conns == 0 {
		delete(s.shares, exp)
	}
}
