package daemon

import (
	"log/slog"
	"time"

	"github.com/gdm-project/gdm/pkg/nbdserver"
)

// Config is what a daemon is started with: `gdm serve`'s flags, resolved.
type Config struct {
	NBDListen     string // TCP address for NBD clients ("": none)
	NBDSocket     string // UNIX socket for NBD clients ("": none)
	Control       string // the control API's UNIX socket
	MetricsListen string // address for /metrics ("": none, and no latency histograms)
	StateDir      string
	Demo          bool
	LogLevel      slog.Level
	ShutdownWait  time.Duration
	Pprof         bool
	// AllowPaths, when set, are the only directories (real paths) tables
	// may map files under; OpenTimeout bounds each open of a backing
	// device.
	AllowPaths  []string
	OpenTimeout time.Duration
	// BlockPageCache serves block devices through the page cache rather
	// than with O_DIRECT (targets.OpenOptions.BlockPageCache).
	BlockPageCache bool
	// FileDirect serves regular files with O_DIRECT and Linux AIO
	// (targets.OpenOptions.FileDirect).
	FileDirect bool
	// ControlTimeout bounds how long one control request may take to
	// arrive (headers and body) and how long an idle control connection
	// is kept.
	ControlTimeout time.Duration
	NBD            NBDLimits
	// TLS is NBD over TLS (STARTTLS) for the NBD listeners.
	TLS TLSConfig
	// Version is the daemon's version, as /v1/version and the log show it.
	Version string
}

// NBDLimits are the NBD server's bounds on what clients may hold (see
// nbdserver.Server and its limits.go for the defaults' reasons).
type NBDLimits struct {
	MaxConns          int
	MaxConnsPerClient int
	IdleTimeout       time.Duration
	WriteTimeout      time.Duration
	PayloadTimeout    time.Duration
	MaxInFlightTotal  int64
	// MaxInFlightDevice is one device's share of MaxInFlightTotal;
	// 0 takes the server's default (half of it).
	MaxInFlightDevice int64
	MaxPipes          int
}

// apply sets the bounds on srv, before it serves.
func (l NBDLimits) apply(srv *nbdserver.Server) {
	srv.MaxConns = l.MaxConns
	srv.MaxConnsPerClient = l.MaxConnsPerClient
	srv.IdleTimeout = l.IdleTimeout
	srv.WriteTimeout = l.WriteTimeout
	srv.PayloadTimeout = l.PayloadTimeout
	srv.MaxInFlightBytesTotal = l.MaxInFlightTotal
	srv.MaxInFlightBytesPerExport = l.MaxInFlightDevice
	srv.MaxPipes = l.MaxPipes
}
