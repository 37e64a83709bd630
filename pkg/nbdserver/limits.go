package nbdserver

import (
	"net"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Why each default (a storage server's, see Server):
//
// Descriptors. Clients cost one per connection and two per pipe pinned by
// a spliced read; everything else the daemon opens (listeners, the control
// API and its verbs, /metrics, backing files, the state directory) comes
// out of FDReserve. So connections take at most half of what is left of
// RLIMIT_NOFILE after the reserve, and pipes a quarter (two descriptors
// each, so the other half): connections + 2 × pipes + reserve never reach
// the limit, and EMFILE cannot happen by construction. With the common soft
// limit of 1024 that is 384 connections and 192 pipes; with Go raising the
// soft limit to the hard one (often 524288) the caps below apply.
//
// Per client, 128: a host running many kernel nbd devices with several
// connections each, or a multi-connection libnbd/qemu client, stays well
// under it, while one address (or one local uid) cannot take all of the
// global bound by itself.
//
// Bytes in flight, 512 MiB across connections: sixteen 32 MiB requests, or
// enough 1 MiB ones to keep any disk busy, while a host's memory is never
// pinned by clients that do not read their replies.
//
// Bytes in flight per export, half of that: requests stuck on one export
// (a suspended device holds its I/O until resume) then leave the other
// half to every other export, 256 MiB by default, still enough to keep a
// disk busy; and one busy export alone still gets twice what one
// connection may hold, so a multi-connection client of a single device is
// not slowed. A smaller share would slow a lone busy device; a larger one
// would leave less to the rest when a device is stuck. The half is a
// guarantee against one stuck export only: two can fill the bound.
const (
	FDReserve                = 256
	DefaultMaxConnsPerClient = 128
	DefaultWriteTimeout      = 60 * time.Second
	DefaultPayloadTimeout    = 60 * time.Second
	DefaultMaxInFlightTotal  = 512 << 20
	maxDefaultConns          = 1024
	maxDefaultPipes          = 256
	minDefaultConns          = 16
	minDefaultPipes          = 8
)

// DefaultLimits derives the default bounds on connections and pipes from
// the process's RLIMIT_NOFILE (see FDReserve).
func DefaultLimits() (maxConns, maxPipes int) {
	var rl unix.Rlimit
	nofile := 1024
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < 1<<30 {
		nofile = int(rl.Cur)
	}
	return limitsFor(nofile)
}

func limitsFor(nofile int) (maxConns, maxPipes int) {
	avail := max(0, nofile-FDReserve)
	return min(maxDefaultConns, max(minDefaultConns, avail/2)), min(maxDefaultPipes, max(minDefaultPipes, avail/4))
}

// Refusal reasons, for Stats.Refused.
const (
	RefusedGlobal    = iota // MaxConns connections were open
	RefusedPerClient        // MaxConnsPerClient of this client were open
	numRefusals
	admitOK
	admitClosed
)

// RefusalNames name the reasons, in order, for metrics labels.
var RefusalNames = [numRefusals]string{"global", "per_client"}

// init fills in the defaults and the shared bounds, once.
func (s *Server) init() {
	s.setup.Do(func() {
		conns, pipes := DefaultLimits()
		if s.MaxConns == 0 {
			s.MaxConns = conns
		}
		if s.MaxConnsPerClient == 0 {
			s.MaxConnsPerClient = DefaultMaxConnsPerClient
		}
		if s.WriteTimeout == 0 {
			s.WriteTimeout = DefaultWriteTimeout
		}
		if s.PayloadTimeout == 0 {
			s.PayloadTimeout = DefaultPayloadTimeout
		}
		if s.MaxInFlightBytesTotal == 0 {
			s.MaxInFlightBytesTotal = DefaultMaxInFlightTotal
		}
		if s.MaxInFlightBytesPerExport == 0 {
			s.MaxInFlightBytesPerExport = -1 // no total: no share of it either
			if s.MaxInFlightBytesTotal > 0 {
				s.MaxInFlightBytesPerExport = max(1, s.MaxInFlightBytesTotal/2)
			}
		}
		if s.MaxPipes == 0 {
			s.MaxPipes = pipes
		}
		s.pipes.max, s.pipes.refused = s.MaxPipes, &s.stats.PipesRefused
		s.shared = newSharedBudget(s.MaxInFlightBytesTotal, &s.stats.InFlightWaits, s.mem.burstEnded)
		s.mem.runs, s.mem.inFlight, s.mem.peak, s.mem.unpooled = &s.stats.MemoryReleases, &s.shared.bytes, &s.shared.peak, &unpooled
	})
}

// clientKey names the client a connection comes from, for
// MaxConnsPerClient: its IPv4 address, or its IPv6 /64 (one host commonly
// has a whole /64 to pick addresses from); for a UNIX socket, where every
// client has the same (empty) address, the uid of the peer process
// (SO_PEERCRED).
func clientKey(nc net.Conn) string {
	switch c := nc.(type) {
	case *net.TCPConn:
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			return tcpKey(a)
		}
	case *net.UnixConn:
		raw, err := c.SyscallConn()
		if err != nil {
			break
		}
		key := "unix"
		raw.Control(func(fd uintptr) {
			if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
				key = "uid:" + strconv.FormatUint(uint64(cred.Uid), 10)
			}
		})
		return key
	}
	return nc.RemoteAddr().Network() + ":" + nc.RemoteAddr().String()
}

func tcpKey(a *net.TCPAddr) string {
	if a.IP.To4() != nil {
		return "ip:" + a.IP.String()
	}
	return "ip:" + a.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// admit counts a new connection from client key against the limits, or
// says why it may not open (or admitClosed after Shutdown or Close).
func (s *Server) admit(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return admitClosed
	}
	if s.MaxConns > 0 && s.open >= s.MaxConns {
		return RefusedGlobal
	}
	if s.MaxConnsPerClient > 0 && s.clients[key] >= s.MaxConnsPerClient {
		return RefusedPerClient
	}
	if s.clients == nil {
		s.clients = map[string]int{}
	}
	s.clients[key]++
	s.open++
	return admitOK
}

// leave gives back a connection counted by admit.
func (s *Server) leave(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaveLocked(key)
}

// leaveLocked is leave with s.mu held.
func (s *Server) leaveLocked(key string) {
	s.open--
	if s.clients[key] <= 1 {
		delete(s.clients, key)
		return
	}
	s.clients[key]--
}

// refuse closes a connection past a limit at once, before any byte of the
// handshake, and counts it.
func (s *Server) refuse(nc net.Conn, reason int, key string) {
	s.stats.Refused[reason].Add(1)
	s.log().Debug("connection refused", "reason", RefusalNames[reason], "client", key)
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetLinger(0) // no TIME_WAIT kept for a refused client
	}
	nc.Close()
}
