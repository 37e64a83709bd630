package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("attach", verb{
		usage: "attach NAME [--connections N] [--index N]",
		help:  "connect the kernel's NBD driver to a device; prints the /dev/nbdN it got (root, nbd module)",
		run:   runAttach,
	})
}

// attachFlags are attach's options, as the control API's AttachReq.
type attachFlags struct {
	connections int
	index       int
	timeout     time.Duration
	deadTimeout time.Duration
	readOnly    bool
}

func (f *attachFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.connections, "connections", 1, "sockets the kernel spreads requests over (multi-conn), 1 to 64")
	fs.IntVar(&f.index, "index", -1, "the N of /dev/nbdN to use (default: the kernel picks a free one)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long a request may wait for its reply before the kernel drops its connection (whole seconds)")
	fs.DurationVar(&f.deadTimeout, "dead-timeout", 120*time.Second,
		"how long the kernel holds I/O while gdm restarts (whole seconds); past it, I/O fails")
	fs.BoolVar(&f.readOnly, "read-only", false, "the kernel device is read-only")
}

func (f *attachFlags) request() (controlapi.AttachReq, error) {
	req := controlapi.AttachReq{Connections: f.connections, ReadOnly: f.readOnly,
		TimeoutSeconds: ceilSeconds(f.timeout), DeadTimeoutSeconds: ceilSeconds(f.deadTimeout)}
	if f.timeout <= 0 || f.deadTimeout <= 0 {
		return req, fmt.Errorf("%w: timeouts must be positive", errUsage)
	}
	// 0 would be the daemon's default, and an index below -1 "any
	// device": a flag's value must not silently become another.
	if f.connections < 1 {
		return req, fmt.Errorf("%w: --connections must be at least 1", errUsage)
	}
	if f.index < -1 || f.index > math.MaxInt32 {
		return req, fmt.Errorf("%w: --index must be 0 to %d (or -1: any)", errUsage, math.MaxInt32)
	}
	if f.index >= 0 {
		req.Index = &f.index
	}
	return req, nil
}

func ceilSeconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

func runAttach(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("attach")
	var cf clientFlags
	cf.register(fs, true)
	var af attachFlags
	af.register(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	req, err := af.request()
	if err != nil {
		return err
	}
	var info controlapi.DeviceInfo
	if err := controlapi.New(cf.control).Call(http.MethodPost, controlapi.DevicePath(pos[0], "/attach"), nil, req, &info); err != nil {
		return onDevice(pos[0], err)
	}
	if cf.json {
		return printJSON(stdout, info.Attached)
	}
	if info.Attached != nil {
		fmt.Fprintln(stdout, info.Attached.Device)
	}
	return nil
}
