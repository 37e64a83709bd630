package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/gdm-project/gdm/pkg/nbdserver"
)

// nbdLimits are the NBD server's bounds on what clients may hold (see
// nbdserver.Server and its limits.go for the defaults' reasons).
type nbdLimits struct {
	maxConns          int
	maxConnsPerClient int
	idleTimeout       time.Duration
	writeTimeout      time.Duration
	payloadTimeout    time.Duration
	maxInFlightTotal  int64
	// maxInFlightDevice is one device's share of maxInFlightTotal;
	// 0 takes the server's default (half of it).
	maxInFlightDevice int64
	maxPipes          int
}

// apply sets the bounds on srv, before it serves.
func (l nbdLimits) apply(srv *nbdserver.Server) {
	srv.MaxConns = l.maxConns
	srv.MaxConnsPerClient = l.maxConnsPerClient
	srv.IdleTimeout = l.idleTimeout
	srv.WriteTimeout = l.writeTimeout
	srv.PayloadTimeout = l.payloadTimeout
	srv.MaxInFlightBytesTotal = l.maxInFlightTotal
	srv.MaxInFlightBytesPerExport = l.maxInFlightDevice
	srv.MaxPipes = l.maxPipes
}

// pathList is a repeatable flag of absolute directory paths.
type pathList []string

func (p *pathList) String() string { return strings.Join(*p, ",") }

func (p *pathList) Set(v string) error {
	if !filepath.IsAbs(v) {
		return fmt.Errorf("%q is not an absolute path", v)
	}
	real, err := filepath.EvalSymlinks(v)
	if err != nil {
		return err
	}
	*p = append(*p, real)
	return nil
}
