// Package nbdclient is an NBD client in Go: gdm uses it to serve tables
// whose backing devices are exports of other hosts (another gdm, nbdkit,
// qemu-nbd, nbd-server).
//
// It speaks fixed newstyle with NBD_OPT_GO, structured replies and the
// base:allocation meta context. Many requests are in flight on one
// connection: callers queue requests, which go out in batches (one writev
// for all that queued while the previous batch was written), and one
// reader goroutine per connection matches replies to them by cookie. A server that offers CAN_MULTI_CONN
// gets a small pool of connections. Every call takes a context and is
// bounded by a request timeout, kept by one watchdog timer per connection
// rather than a timer per request; a connection that drops is redialled with
// backoff, and the requests it held are sent once more (see Client.do for
// why that is safe for writes too). Everything a server sends is checked
// against what was asked before it is read into memory. ReadAsync and
// WriteAsync start a request whose reply the reader hands to a callback,
// with no goroutine waiting for it (async.go).
package nbdclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options configure a Client. Network and Address (or Dial) and Export are
// required; zero values of the rest take the defaults.
type Options struct {
	Network, Address string // "tcp" or "unix", and where
	Export           string
	// Dial replaces dialing Network/Address (a TLS dialer, tests).
	Dial func(ctx context.Context) (net.Conn, error)
	// TLS, when set, makes the client start TLS (NBD_OPT_STARTTLS) before
	// any other option, and refuse a server that will not. Set ServerName
	// (or InsecureSkipVerify) as for any TLS client.
	TLS *tls.Config
	// RequestTimeout bounds one call, retry included (default 30 s;
	// negative: none). A request it ends drops its connection.
	RequestTimeout time.Duration
	// DialTimeout bounds a connect plus handshake (default 10 s).
	DialTimeout time.Duration
	// MaxInFlight bounds the requests in flight per connection (default 64).
	MaxInFlight int
	// MaxConns is the pool size when the server offers CAN_MULTI_CONN
	// (default 4); without it the client uses one connection.
	MaxConns int
	// BackoffMin and BackoffMax bound the wait between failed dials
	// (defaults 100 ms and 5 s), doubling from one to the other.
	BackoffMin, BackoffMax time.Duration
	// OnChange, if set, is called when Connected changes: the last
	// connection dropped, or the first came back. It runs in a goroutine
	// of its own, with no lock held; calls may overlap.
	OnChange func()
}

func (o *Options) defaults() {
	if o.Dial == nil {
		o.Dial = netDialer(o.Network, o.Address)
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 64
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 4
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 100 * time.Millisecond
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(5*time.Second, o.BackoffMin)
	}
}

// Client is a connection (or pool of them) to one export. Safe for
// concurrent use.
type Client struct {
	opts    Options       // immutable after Dial
	info    Info          // the first handshake's; redials must match it
	splices bool          // the first connection has a descriptor (no TLS); immutable
	conns   []*conn       // slots; an element is guarded by mu
	next    atomic.Uint32 // round robin over conns
	dialing chan struct{} // a token: one redial at a time
	// refilling: a background redial of a pool slot is under way.
	refilling atomic.Bool
	// reviving: the background redial of a client with no connection up
	// is under way (revive.go).
	reviving atomic.Bool
	// life is cancelled by Close (cause ErrClosed): the dials under way
	// (a refill's, a caller's redial) watch it, so that they end at once
	// instead of outliving the client until their timeout.
	life context.Context
	end  context.CancelCauseFunc

	mu       sync.Mutex // guards conns' elements, closed, backoff, nextDial, dialErr
	closed   bool
	backoff  time.Duration
	nextDial time.Time
	// pace guards quietUntil and flapBackoff. A leaf lock, held around
	// nothing else: a connection's kill takes it under that connection's
	// lock (connDied), so that whoever sees the connection dead sees the
	// pacing its death set.
	pace sync.Mutex
	// quietUntil: no background redial (revive.go) before then, after a
	// hang-up on a server shutting down, or connections that died young;
	// flapBackoff is the wait after the last of those (connDied).
	quietUntil  time.Time
	flapBackoff time.Duration
	// dialErr is why the last failed dial failed, for the errors of the
	// requests refused during the backoff after it.
	dialErr error

	redials, retries, failedDials atomic.Uint64
	// up is what Connected last said, as noteState saw it (OnChange);
	// noteMu makes noteState's looks one at a time.
	up     atomic.Bool
	noteMu sync.Mutex
	// lostWrites: a connection dropped with writes no flush covered, and
	// the next Flush has yet to say so (lostwrites.go).
	lostWrites atomic.Bool
	// dfMax: reads longer than this go without DF, as the server refused
	// one (overflow.go).
	dfMax atomic.Int64
}

// Stats are a client's fault counters.
type Stats struct {
	Redials, Retries, FailedDials uint64
}

// Dial connects to the export, and fills the pool if the server offers
// CAN_MULTI_CONN (a pool connection that fails to dial is left for a later
// redial).
func Dial(ctx context.Context, opts Options) (*Client, error) {
	opts.defaults()
	cl := &Client{opts: opts, dialing: make(chan struct{}, 1)}
	cl.dfMax.Store(math.MaxInt64)
	cl.life, cl.end = context.WithCancelCause(context.Background())
	c, err := cl.dialConn(ctx)
	if err != nil {
		cl.end(nil)
		return nil, err
	}
	cl.info = c.info
	cl.splices = c.raw != nil
	cl.up.Store(true)
	n := 1
	if c.info.Flags&FlagCanMultiConn != 0 {
		n = opts.MaxConns
	}
	conns := make([]*conn, n)
	conns[0] = c
	for i := 1; i < n; i++ {
		if c, err := cl.dialConn(ctx); err == nil && cl.info.replacedBy(c.info) == nil {
			conns[i] = c
		} else if err == nil {
			c.close() // the server changed under the dial: see replacedBy
		}
	}
	cl.mu.Lock() // a connection that dies meanwhile reads them (noteState)
	cl.conns = conns
	cl.mu.Unlock()
	if !cl.Connected() { // every connection died meanwhile: see noteState
		go cl.noteState()
	}
	return cl, nil
}

// Info is what the first handshake learned.
func (cl *Client) Info() Info { return cl.info }

// Size is the export's size in bytes.
func (cl *Client) Size() int64 { return cl.info.Size }

// Stats returns the fault counters.
func (cl *Client) Stats() Stats {
	return Stats{Redials: cl.redials.Load(), Retries: cl.retries.Load(), FailedDials: cl.failedDials.Load()}
}

// noteState calls OnChange if Connected differs from what it last said,
// and starts the background redial when no connection is up.
//
// One look at a time (noteMu): two that overlapped could store what they
// saw in the other order, the older last, and the state stay wrong until
// the next change, which would then raise nothing. Serialised, the last
// look after the last change stores the state as it is. And no look
// before Dial has published the pool: a pool connection that died while
// Dial was still dialling the others would find none up, say "down", and
// leave the state down under a client that is up; Dial looks once itself
// after it publishes the pool.
func (cl *Client) noteState() {
	cl.noteMu.Lock()
	cl.mu.Lock()
	dialled := len(cl.conns) > 0
	cl.mu.Unlock()
	if !dialled {
		cl.noteMu.Unlock()
		return
	}
	up := cl.Connected()
	changed := cl.up.Swap(up) != up
	cl.noteMu.Unlock()
	if !up {
		cl.revive()
	}
	if changed && cl.opts.OnChange != nil {
		cl.opts.OnChange()
	}
}

// Connected says whether at least one connection is up.
func (cl *Client) Connected() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, c := range cl.conns {
		if c != nil && c.alive() {
			return true
		}
	}
	return false
}

// Close disconnects (NBD_CMD_DISC, bounded by a short deadline); calls in
// flight fail with ErrClosed, those redialling too, and dials under way
// stop. It never waits on a dead server beyond that.
func (cl *Client) Close() error {
	cl.mu.Lock()
	cl.closed = true // before end: a dial that end stops sees it (redial)
	conns := append([]*conn(nil), cl.conns...)
	cl.mu.Unlock()
	cl.end(ErrClosed)
	var wg sync.WaitGroup
	for _, c := range conns {
		if c != nil {
			wg.Go(c.close)
		}
	}
	wg.Wait()
	return nil
}

// check refuses a range outside the export, before it reaches the wire.
func (cl *Client) check(off, n int64) error {
	if off < 0 || n < 0 || off > cl.info.Size || n > cl.info.Size-off {
		return fmt.Errorf("nbdclient: range [%d,+%d) outside the export of %d bytes: %w", off, n, cl.info.Size, syscall.EINVAL)
	}
	return nil
}

// maxRequest is the longest request sent: the spec's safe payload, or the
// server's maximum payload if smaller, in whole blocks. The spec lets that
// maximum be any number from the preferred block size up, not a power of
// 2, while every request's offset and length must be multiples of the
// minimum block size (a promise made by asking for NBD_INFO_BLOCK_SIZE):
// split at the maximum itself, the pieces after the first would not be.
// A block is the minimum block size or a sector, whichever is larger; a
// maximum below one block (which the spec forbids) gets one block.
func (cl *Client) maxRequest() int64 { return cl.info.maxRequest() }

// maxRequest is Client.maxRequest for an export with info i.
func (i Info) maxRequest() int64 {
	m := int64(MaxRequest)
	if b := int64(i.MaxBlock); b > 0 {
		m = min(m, b)
	}
	unit := i.blockUnit()
	return max(m-m%unit, unit)
}

// LogicalBlockSize is the unit every request to the export is made of:
// the minimum block size the server advertised, or a sector, whichever is
// larger (a minimum that is not a power of 2 up to 64 KiB, which the spec
// forbids, is taken as none). A device stacked on the export takes it as
// its backing device's logical block size.
func (i Info) LogicalBlockSize() int64 { return i.blockUnit() }

// blockUnit is the block requests are made of (see maxRequest).
func (i Info) blockUnit() int64 {
	if b := int64(i.MinBlock); b > sectorSize && b <= 64<<10 && b&(b-1) == 0 {
		return b
	}
	return sectorSize
}

// sectorSize is the unit of the requests gdm's targets make.
const sectorSize = 512

// each runs one request per piece of [off, off+n), pieces at most
// maxRequest long, in order.
func (cl *Client) each(off, n int64, f func(off, n int64) error) error {
	for n > 0 {
		m := min(n, cl.maxRequest())
		if err := f(off, m); err != nil {
			return err
		}
		off, n = off+m, n-m
	}
	return nil
}

func (cl *Client) writable() error {
	if cl.info.Flags&FlagReadOnly != 0 {
		return fmt.Errorf("nbdclient: export is read-only: %w", syscall.EPERM)
	}
	return nil
}
