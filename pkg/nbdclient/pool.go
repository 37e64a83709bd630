package nbdclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// ErrDown is a request refused at once because the server could not be
// reached lately: the client waits out a backoff between dials rather than
// have every request hammer a dead host (and wait for its dial timeout).
var ErrDown = fmt.Errorf("nbdclient: server unreachable, waiting to redial: %w", syscall.EIO)

// ErrExportChanged is a redial that found another export than the first
// dial did (another size or read-only state), or one without a feature
// the client uses (changed.go): the client will not use it.
var ErrExportChanged = fmt.Errorf("nbdclient: export changed since the first connection: %w", syscall.EIO)

// dialConn connects and negotiates one connection, bounded by DialTimeout.
func (cl *Client) dialConn(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.opts.DialTimeout)
	defer cancel()
	nc, err := cl.opts.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("nbdclient: dial %s: %w", cl.opts.Address, err)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	r := bufio.NewReaderSize(nc, 64<<10)
	sc, r, info, err := handshake(ctx, nc, r, cl.opts.Export, cl.opts.TLS)
	if !stop() || err != nil {
		nc.Close()
		if err == nil || ctx.Err() != nil {
			err = fmt.Errorf("nbdclient: handshake with %s: %w", cl.opts.Address, context.DeadlineExceeded)
		}
		return nil, err
	}
	return newConn(sc, r, info, cl.opts.MaxInFlight, cl.connDied, cl.connGone, cl.lostFlag(info)), nil
}

// pick returns a live connection of the pool, starting at the next slot
// round robin; when none is alive it redials one, bounded by ctx and the
// request's deadline.
func (cl *Client) pick(ctx context.Context, deadline time.Time) (*conn, error) {
	n := uint32(len(cl.conns))
	start := cl.next.Add(1) % n
	cl.mu.Lock()
	closed := cl.closed
	for i := range n {
		if c := cl.conns[(start+i)%n]; c != nil && c.alive() {
			cl.mu.Unlock()
			if i > 0 && !closed {
				cl.refill(int(start))
			}
			return c, nil
		}
	}
	cl.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	ctx, cancel := timed(ctx, deadline)
	defer cancel()
	ctx, stop := cl.untilClose(ctx)
	defer stop()
	return cl.redial(ctx, int(start))
}

// untilClose returns ctx, cancelled by Close too (cause ErrClosed), and
// the function that lets go of it. Only redials (a slow path) use it.
func (cl *Client) untilClose(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(cl.life, func() { cancel(ErrClosed) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

// refill redials a dead slot of the pool in the background while the
// others serve, one at a time, so that a pool that lost connections grows
// back to its size.
func (cl *Client) refill(i int) {
	if !cl.refilling.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer cl.refilling.Store(false)
		ctx, cancel := context.WithTimeout(cl.life, cl.opts.DialTimeout) // Close ends it
		defer cancel()
		cl.redial(ctx, i)
	}()
}

// redial replaces the connection in slot i, one dial at a time, and not
// before the backoff since the last failed dial has passed.
func (cl *Client) redial(ctx context.Context, i int) (*conn, error) {
	select {
	case cl.dialing <- struct{}{}:
	case <-ctx.Done():
		return nil, ctxErr(ctx)
	}
	defer func() { <-cl.dialing }()
	cl.mu.Lock()
	if c := cl.conns[i]; c != nil && c.alive() { // another caller redialled it
		cl.mu.Unlock()
		return c, nil
	}
	wait, last := time.Until(cl.nextDial), cl.dialErr
	cl.mu.Unlock()
	if wait > 0 { // says why the last dial failed: a refused handshake, a changed export
		return nil, fmt.Errorf("%w (next try in %v; last dial: %w)", ErrDown, wait.Round(time.Millisecond), last)
	}
	c, err := cl.dialConn(ctx)
	if err == nil {
		if err = cl.info.replacedBy(c.info); err != nil {
			c.close()
		}
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if err != nil && cl.closed {
		return nil, ErrClosed // Close stopped the dial: not the server's fault
	}
	if err != nil {
		cl.backoff = min(max(cl.backoff*2, cl.opts.BackoffMin), cl.opts.BackoffMax)
		cl.nextDial = time.Now().Add(cl.backoff)
		cl.failedDials.Add(1)
		cl.dialErr = err
		return nil, fmt.Errorf("%w: %w", ErrDown, err)
	}
	cl.backoff = 0
	if cl.closed {
		c.close()
		return nil, ErrClosed
	}
	cl.conns[i] = c
	cl.redials.Add(1)
	go cl.noteState() // not under cl.mu, which it takes
	return c, nil
}

// do runs one request under the request timeout, on a live connection. A
// request whose connection dropped before its reply was complete is sent
// once more on a new connection: every NBD command is idempotent at its
// offset (a write puts the same bytes at the same place again), and the
// caller has not seen it complete, so nothing issued after its completion
// can be overwritten by the retry. Server error replies and timeouts are
// not retried: the server answered, or is not answering.
func (cl *Client) do(ctx context.Context, req request, payload, buf []byte) result {
	return cl.run(ctx, req, payload, buf, -1)
}

// run is do with a pipe for a spliced read (pipe >= 0), which is never
// sent twice: the pipe may hold part of the first answer.
func (cl *Client) run(ctx context.Context, req request, payload, buf []byte, pipe int) result {
	deadline := cl.deadline()
	for attempt := 0; ; attempt++ {
		res := cl.attempt(ctx, deadline, req, payload, buf, pipe)
		if attempt == 0 && pipe < 0 && retriable(ctx, deadline, res.err) {
			cl.retries.Add(1)
			continue
		}
		return res
	}
}

// deadline is when the request timeout of a request starting now ends
// (zero: never), enforced by each connection's watchdog.
func (cl *Client) deadline() time.Time {
	if cl.opts.RequestTimeout > 0 {
		return time.Now().Add(cl.opts.RequestTimeout)
	}
	return time.Time{}
}

// attempt sends the request once, on a live connection (redialled if
// need be), and waits for its reply. A server shutting down is hung up on,
// and its answer becomes ErrDisconnected, which may be retried.
func (cl *Client) attempt(ctx context.Context, deadline time.Time, req request, payload, buf []byte, pipe int) result {
	c, err := cl.pick(ctx, deadline)
	if err != nil {
		return result{err: err}
	}
	res := c.do(ctx, deadline, req, payload, buf, pipe)
	if shuttingDown(res.err) {
		res.err = cl.leaveShuttingDown(res.err)
	}
	return res
}

// leaveShuttingDown hangs up on a server that answered err, shutting
// down (it waits for every connection to go), and returns the error the
// request gets: ErrDisconnected, which may be retried.
func (cl *Client) leaveShuttingDown(err error) error {
	cl.pace.Lock() // before the hang-up, which starts the revive
	cl.quietUntil = time.Now().Add(cl.opts.BackoffMax)
	cl.pace.Unlock()
	cl.hangUpAll()
	return fmt.Errorf("%w: %w", ErrDisconnected, err)
}

// retriable says whether a first attempt that ended in err is sent once
// more: its connection dropped before the reply was complete, and neither
// the caller nor the request timeout has given up.
func retriable(ctx context.Context, deadline time.Time, err error) bool {
	return errors.Is(err, ErrDisconnected) && ctx.Err() == nil &&
		(deadline.IsZero() || time.Now().Before(deadline))
}

// hangUpAll hangs up every connection of the pool: a server shutting down
// waits for all of them to go.
func (cl *Client) hangUpAll() {
	cl.mu.Lock()
	conns := append([]*conn(nil), cl.conns...)
	cl.mu.Unlock()
	for _, c := range conns {
		if c != nil {
			c.hangUp(errServerShutdown)
		}
	}
}

// errServerShutdown is why a connection was hung up on a server that
// answered ESHUTDOWN.
var errServerShutdown = errors.New("nbdclient: the server is shutting down")

// shuttingDown says whether err is a server's NBD_ESHUTDOWN: the spec's
// "I am going away, disconnect". A server (nbdkit on SIGTERM) may answer it
// to every request and wait for its clients to go before it exits, so the
// client hangs up and redials rather than keep the connection.
func shuttingDown(err error) bool {
	if err == nil {
		return false // before re, which escapes: no allocation per call
	}
	var re *RemoteError
	return errors.As(err, &re) && re.Errno == syscall.ESHUTDOWN
}

func netDialer(network, address string) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
}
