package nbdserver

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server serves Exports over NBD on any number of listeners. Configure the
// fields before the first Serve. Shutdown and Close work as net/http's do.
type Server struct {
	Exports Exports
	Log     *slog.Logger
	// HandshakeTimeout closes a connection that has not finished negotiating
	// in time (default 10 s).
	HandshakeTimeout time.Duration
	// MaxInFlight bounds the requests being worked on per connection
	// (default 128); MaxInFlightBytes bounds their payload and read buffers
	// (default 128 MiB). The reader stops reading while either is reached.
	MaxInFlight      int
	MaxInFlightBytes int64

	// The bounds below hold whatever clients do (see limits.go for the
	// defaults and why). Zero takes the default; negative means none.
	//
	// MaxConns bounds the open connections; MaxConnsPerClient those of one
	// client (an IPv4 address or IPv6 /64 for TCP, a peer uid for UNIX
	// sockets). A connection past either is closed at once, before the
	// handshake.
	MaxConns          int
	MaxConnsPerClient int
	// IdleTimeout closes a connection past its handshake that has nothing
	// in flight and sends no request for this long. Default: none, since
	// the kernel's nbd client may rightly sit idle for hours.
	IdleTimeout time.Duration
	// WriteTimeout drops a client that has not taken a reply within this
	// (between it and 1.25 times it; default 60 s), releasing its buffers
	// and pipes.
	WriteTimeout time.Duration
	// PayloadTimeout drops a client whose write payload has not all
	// arrived this long after its header (default 60 s). Clients send the
	// payload right behind the header; one that withholds it holds budget.
	PayloadTimeout time.Duration
	// MaxInFlightBytesTotal bounds the bytes in flight across all
	// connections (default 512 MiB).
	MaxInFlightBytesTotal int64
	// MaxInFlightBytesPerExport bounds the bytes in flight of one export
	// across its connections, a share of MaxInFlightBytesTotal (default
	// half of it): requests stuck on one export (a suspended device, a
	// hung backend) then never hold the whole bound, and the other
	// exports' readers keep going. See limits.go.
	MaxInFlightBytesPerExport int64
	// MaxPipes bounds the pipes that spliced reads hold (two descriptors
	// each); past it reads are copied.
	MaxPipes int

	// TLS, when set, is offered with NBD_OPT_STARTTLS: after it the
	// connection's options and transmission run inside TLS (and reads are
	// copied, never spliced). Certificates may change between handshakes
	// through the config's GetCertificate or GetConfigForClient.
	// TLSRequired answers every option but STARTTLS and ABORT before TLS
	// with NBD_REP_ERR_TLS_REQD, so export names do not leak, and closes
	// the connection of a client that cannot or will not use TLS.
	TLS         *tls.Config
	TLSRequired bool

	stats  Stats       // atomic counters
	stalls stallWatch  // has its own lock
	pipes  pipePool    // has its own lock
	mem    memReleaser // has its own lock
	setup  sync.Once   // runs init: the defaults, shared, and the bounds of pipes and mem
	shared *sharedBudget
	// transmitting counts connections past their handshake (atomic); TCP
	// readers spin only while it is small (see spinWindow).
	transmitting atomic.Int32
	// pinned, when a test sets it (before Serve), is every connection's
	// setting, kept: its tuner turns no knob. A test of a path the tuner
	// may leave (the spinning reader) then runs that path every time.
	pinned *uint8

	mu        sync.Mutex // guards the fields below, and each conn's opening and dropped
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	clients   map[string]int // open connections by client (clientKey)
	open      int            // open connections, as admitted
	shutdown  bool
	connsDone chan struct{} // closed when conns empties after shutdown
	// shares holds each served export's share of the bound on bytes in
	// flight (see joinShare).
	shares map[Export]*exportShare
}

// Gauges are the server's current use of its bounded resources.
type Gauges struct {
	Conns         int   // open connections
	InFlightBytes int64 // bytes in flight across all connections
	Pipes         int   // pipes open for spliced reads
}

// Gauges returns the server's current use of its bounds.
func (s *Server) Gauges() Gauges {
	s.init()
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	return Gauges{Conns: n, InFlightBytes: s.shared.bytes.Load(), Pipes: s.pipes.Open()}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// Serve accepts connections on l until Shutdown or Close, and returns
// ErrServerClosed then. Each connection is served on its own goroutines.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || outOfResources(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log().Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !s.start(nc) {
			return ErrServerClosed
		}
	}
}

// start admits an accepted connection and starts serving it, or refuses
// it; it returns false once the server is shutting down. A panic here
// (in setting the connection up) closes that connection only, as on the
// connection's own goroutines (conn.recovered).
func (s *Server) start(nc net.Conn) (open bool) {
	key, admitted := "", false
	defer func() {
		if p := recover(); p != nil {
			s.stats.ConnPanics.Add(1)
			s.log().Error("panic setting up a connection; closing it", "panic", p, "stack", string(debug.Stack()))
			if admitted {
				s.leave(key)
			}
			nc.Close()
			open = true
		}
	}()
	key = clientKey(nc)
	switch s.admit(key) {
	case admitClosed:
		nc.Close()
		return false
	case RefusedGlobal:
		s.refuse(nc, RefusedGlobal, key)
		return true
	case RefusedPerClient:
		s.refuse(nc, RefusedPerClient, key)
		return true
	}
	admitted = true
	s.stats.Accepted.Add(1)
	c := newConn(s, nc)
	c.client = key
	if !s.track(c) {
		s.leave(key)
		nc.Close()
		return false
	}
	go c.serve()
	return true
}

// outOfResources reports an accept error that passes once descriptors or
// memory are freed: the accept loop backs off (without spinning) and
// retries. The connection limits leave FDReserve descriptors free, so
// EMFILE should not happen; another part of the process may still use them
// up, or the whole system run out (ENFILE).
func outOfResources(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

func (s *Server) closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

// untrack forgets an ended connection. The last one to go also closes the
// idle pipes: two descriptors each, kept only while clients may want them,
// so that a server without clients holds no descriptor for them.
func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	s.leaveLocked(c.client)
	delete(s.conns, c)
	last := len(s.conns) == 0
	if s.shutdown && last && s.connsDone != nil {
		close(s.connsDone)
		s.connsDone = nil
	}
	s.mu.Unlock()
	if last {
		s.pipes.trim()
	}
}

// Shutdown stops accepting, then lets every connection finish the requests
// it has read, flush, and close. If ctx ends first, the remaining
// connections are closed at once and ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	for l := range s.listeners {
		l.Close()
	}
	done := make(chan struct{})
	if len(s.conns) == 0 {
		close(done)
	} else {
		s.connsDone = done
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.stopReading()
	}
	select {
	case <-done:
		s.pipes.close()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes listeners and every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.shutdown = true
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.kill()
	}
	s.pipes.close()
	return nil
}
