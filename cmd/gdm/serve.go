package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gdm-project/gdm/internal/daemon"
	"github.com/gdm-project/gdm/pkg/nbdserver"
	"github.com/gdm-project/gdm/pkg/targets"
)

func init() {
	register("serve", verb{
		usage: "serve [--demo] [--nbd-listen A] [--nbd-socket P] [--control P] [--state-dir D] [--metrics-listen A]",
		help:  "run the daemon: serve every device over NBD",
		run:   runServe,
	})
}

// serveFlags are `gdm serve`'s flags: the daemon's Config, and the two
// that need parsing first.
type serveFlags struct {
	cfg          daemon.Config
	logLevel     string
	allowPaths   pathList
	steadySysmon bool
	ioFlusher    bool
}

func (s *serveFlags) register(fs *flag.FlagSet) {
	c := &s.cfg
	fs.StringVar(&c.NBDListen, "nbd-listen", "", "TCP `ADDR` for NBD clients, e.g. 127.0.0.1:10809 (default none: every local user could reach every device; --demo listens on 127.0.0.1:10809)")
	fs.StringVar(&c.NBDSocket, "nbd-socket", defaultNBDSocket, "UNIX socket `PATH` for NBD clients, mode 0660 (empty: none)")
	fs.StringVar(&c.Control, "control", defaultControl, "control API socket `PATH` (mode 0600)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", "127.0.0.1:9810", "address for /metrics (empty: none)")
	fs.StringVar(&c.StateDir, "state-dir", "/var/lib/gdm", "`DIR` for device definitions (and the demo's backing files)")
	fs.BoolVar(&c.Demo, "demo", false, "create (or reuse) a 1 GiB striped demo device; state in $TMPDIR/gdm-demo unless --state-dir")
	fs.StringVar(&s.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.Pprof, "pprof", false, "also serve Go's /debug/pprof on the metrics listener")
	fs.DurationVar(&c.ShutdownWait, "shutdown-timeout", 30*time.Second, "how long a shutdown waits for in-flight requests")
	fs.Var(&s.allowPaths, "allow-path", "only map backing devices (files, block devices, nbd+unix sockets, nbds certificate files) whose real path lies under `DIR` (repeatable; default: anywhere)")
	fs.DurationVar(&c.OpenTimeout, "open-timeout", targets.DefaultOpenTimeout, "how long opening one backing device may take (a hung mount)")
	fs.BoolVar(&c.BlockPageCache, "block-page-cache", false, "read and write block devices through the page cache (cached reads; a device's write errors show at the next flush) instead of with O_DIRECT, as dm does")
	fs.BoolVar(&c.FileDirect, "file-direct", false, "read and write regular files with O_DIRECT and Linux AIO, past the page cache (qemu's cache=none): deep queues on fast disks and per-request write errors, but no cached reads")
	fs.DurationVar(&c.ControlTimeout, "control-timeout", 30*time.Second, "how long a control request may take to arrive; idle control connections close after it")
	registerNBDLimits(fs, &c.NBD)
	fs.StringVar(&c.TLS.Mode, "tls", "off", "NBD over TLS (STARTTLS): off, on (offered) or require (nothing else answered before it)")
	fs.StringVar(&c.TLS.Cert, "tls-cert", "", "server certificate `FILE` (PEM; reloaded on SIGHUP)")
	fs.StringVar(&c.TLS.Key, "tls-key", "", "server private key `FILE` (PEM; reloaded on SIGHUP)")
	fs.StringVar(&c.TLS.ClientCA, "tls-client-ca", "", "CA certificates `FILE` (PEM): clients must then present a certificate it signed")
	fs.BoolVar(&s.steadySysmon, "steady-sysmon", true, "keep Go's monitor thread polling every 10 ms rather than woken by system calls (fewer context switches per request; gdm re-executes itself with GODEBUG=schedtrace=...; false: about 100 fewer wake-ups a second when idle)")
	fs.BoolVar(&s.ioFlusher, "io-flusher", true, "serve as an I/O flusher (PR_SET_IO_FLUSHER, needs CAP_SYS_RESOURCE): the daemon's allocations never wait on writeback of a device it serves, which deadlocks when one is attached on this host; without the capability gdm says so and serves on")
}

func registerNBDLimits(fs *flag.FlagSet, l *daemon.NBDLimits) {
	conns, pipes := nbdserver.DefaultLimits()
	fs.IntVar(&l.MaxConns, "nbd-max-connections", conns,
		fmt.Sprintf("most NBD connections open at once; more are closed at once (default from RLIMIT_NOFILE: (nofile-%d)/2, at most 1024; -1: no limit)", nbdserver.FDReserve))
	fs.IntVar(&l.MaxConnsPerClient, "nbd-max-connections-per-client", nbdserver.DefaultMaxConnsPerClient,
		"most NBD connections of one client (over TCP an IPv4 address or IPv6 /64, over the UNIX socket a peer uid); -1: no limit")
	fs.DurationVar(&l.IdleTimeout, "nbd-idle-timeout", 0,
		"close an NBD connection with nothing in flight that sends nothing for this long (0: never; the kernel's nbd client may rightly idle for hours)")
	fs.DurationVar(&l.WriteTimeout, "nbd-write-timeout", nbdserver.DefaultWriteTimeout,
		"drop an NBD client that takes no reply for this long (-1s: never)")
	fs.DurationVar(&l.PayloadTimeout, "nbd-payload-timeout", nbdserver.DefaultPayloadTimeout,
		"drop an NBD client whose write payload has not all arrived this long after its header (-1s: never)")
	fs.Int64Var(&l.MaxInFlightTotal, "nbd-max-inflight-bytes", nbdserver.DefaultMaxInFlightTotal,
		"most bytes of NBD requests in flight across all connections; readers wait past it (-1: no limit)")
	fs.Int64Var(&l.MaxInFlightDevice, "nbd-max-inflight-bytes-per-device", 0,
		"most bytes of NBD requests in flight for one device, across its connections, so that requests stuck on one device (suspended, hung backend) leave the rest of --nbd-max-inflight-bytes to the others (0: half of --nbd-max-inflight-bytes; -1: no limit)")
	fs.IntVar(&l.MaxPipes, "nbd-max-pipes", pipes,
		fmt.Sprintf("most pipes held by spliced reads (two fds each); past it reads are copied (default from RLIMIT_NOFILE: (nofile-%d)/4, at most 256)", nbdserver.FDReserve))
}

func runServe(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("serve")
	var sf serveFlags
	sf.register(fs)
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	cfg, err := sf.resolve(fs)
	if err != nil {
		return err
	}
	reexecPrepared(sf.steadySysmon, sf.ioFlusher)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := daemon.Start(cfg, stdout)
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop()
	exitOnNextSignal()
	return srv.Shutdown()
}

// resolve is the daemon's Config from the parsed flags: the log level, the
// allowed paths, the version, and --demo's defaults for what was not set.
func (s *serveFlags) resolve(fs *flag.FlagSet) (daemon.Config, error) {
	cfg := s.cfg
	if err := cfg.LogLevel.UnmarshalText([]byte(s.logLevel)); err != nil {
		return cfg, fmt.Errorf("%w: --log-level %q", errUsage, s.logLevel)
	}
	cfg.AllowPaths = s.allowPaths
	cfg.Version = versionString()
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.Demo && !set["state-dir"] {
		cfg.StateDir = filepath.Join(os.TempDir(), "gdm-demo")
	}
	if cfg.Demo && !set["control"] && os.Getenv("GDM_CONTROL") == "" {
		cfg.Control = filepath.Join(cfg.StateDir, "gdm.sock")
	}
	if cfg.Demo && !set["nbd-listen"] {
		cfg.NBDListen = daemon.DemoListen
	}
	if cfg.Demo && !set["nbd-socket"] {
		cfg.NBDSocket = filepath.Join(cfg.StateDir, "nbd.sock")
	}
	return cfg, nil
}

// pathList is a repeatable flag of absolute directory paths, kept as their
// real paths.
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
