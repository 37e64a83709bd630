package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

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

// serveConfig is `gdm serve`'s flags.
type serveConfig struct {
	nbdListen     string
	nbdSocket     string
	control       string
	metricsListen string
	stateDir      string
	demo          bool
	logLevel      string
	shutdownWait  time.Duration
	pprof         bool
	// allowPaths, when set, are the only directories tables may map
	// files under; openTimeout bounds each open of a backing device.
	allowPaths  pathList
	openTimeout time.Duration
	// controlTimeout bounds how long one control request may take to
	// arrive (headers and body) and how long an idle control connection
	// is kept.
	controlTimeout time.Duration
	nbd            nbdLimits
}

func (c *serveConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.nbdListen, "nbd-listen", "", "TCP `ADDR` for NBD clients, e.g. 127.0.0.1:10809 (default none: every local user could reach every device; --demo listens on 127.0.0.1:10809)")
	fs.StringVar(&c.nbdSocket, "nbd-socket", defaultNBDSocket, "UNIX socket `PATH` for NBD clients, mode 0660 (empty: none)")
	fs.StringVar(&c.control, "control", defaultControl, "control API socket `PATH` (mode 0600)")
	fs.StringVar(&c.metricsListen, "metrics-listen", "127.0.0.1:9810", "address for /metrics (empty: none)")
	fs.StringVar(&c.stateDir, "state-dir", "/var/lib/gdm", "`DIR` for device definitions (and the demo's backing files)")
	fs.BoolVar(&c.demo, "demo", false, "create (or reuse) a 1 GiB striped demo device; state in $TMPDIR/gdm-demo unless --state-dir")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.pprof, "pprof", false, "also serve Go's /debug/pprof on the metrics listener")
	fs.DurationVar(&c.shutdownWait, "shutdown-timeout", 30*time.Second, "how long a shutdown waits for in-flight requests")
	fs.Var(&c.allowPaths, "allow-path", "only map backing devices whose real path lies under `DIR` (repeatable; default: anywhere)")
	fs.DurationVar(&c.openTimeout, "open-timeout", targets.DefaultOpenTimeout, "how long opening one backing device may take (a hung mount)")
	fs.DurationVar(&c.controlTimeout, "control-timeout", 30*time.Second, "how long a control request may take to arrive; idle control connections close after it")
	conns, pipes := nbdserver.DefaultLimits()
	fs.IntVar(&c.nbd.maxConns, "nbd-max-connections", conns,
		fmt.Sprintf("most NBD connections open at once; more are closed at once (default from RLIMIT_NOFILE: (nofile-%d)/2, at most 1024; -1: no limit)", nbdserver.FDReserve))
	fs.IntVar(&c.nbd.maxConnsPerClient, "nbd-max-connections-per-client", nbdserver.DefaultMaxConnsPerClient,
		"most NBD connections of one client (over TCP an IPv4 address or IPv6 /64, over the UNIX socket a peer uid); -1: no limit")
	fs.DurationVar(&c.nbd.idleTimeout, "nbd-idle-timeout", 0,
		"close an NBD connection with nothing in flight that sends nothing for this long (0: never; the kernel's nbd client may rightly idle for hours)")
	fs.DurationVar(&c.nbd.writeTimeout, "nbd-write-timeout", nbdserver.DefaultWriteTimeout,
		"drop an NBD client that takes no reply for this long (-1s: never)")
	fs.DurationVar(&c.nbd.payloadTimeout, "nbd-payload-timeout", nbdserver.DefaultPayloadTimeout,
		"drop an NBD client whose write payload has not all arrived this long after its header (-1s: never)")
	fs.Int64Var(&c.nbd.maxInFlightTotal, "nbd-max-inflight-bytes", nbdserver.DefaultMaxInFlightTotal,
		"most bytes of NBD requests in flight across all connections; readers wait past it (-1: no limit)")
	fs.Int64Var(&c.nbd.maxInFlightDevice, "nbd-max-inflight-bytes-per-device", 0,
		"most bytes of NBD requests in flight for one device, across its connections, so that requests stuck on one device (suspended, hung backend) leave the rest of --nbd-max-inflight-bytes to the others (0: half of --nbd-max-inflight-bytes; -1: no limit)")
	fs.IntVar(&c.nbd.maxPipes, "nbd-max-pipes", pipes,
		fmt.Sprintf("most pipes held by spliced reads (two fds each); past it reads are copied (default from RLIMIT_NOFILE: (nofile-%d)/4, at most 256)", nbdserver.FDReserve))
}

func runServe(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("serve")
	var cfg serveConfig
	cfg.register(fs)
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.demo && !set["state-dir"] {
		cfg.stateDir = filepath.Join(os.TempDir(), "gdm-demo")
	}
	if cfg.demo && !set["control"] && os.Getenv("GDM_CONTROL") == "" {
		cfg.control = filepath.Join(cfg.stateDir, "gdm.sock")
	}
	if cfg.demo && !set["nbd-listen"] {
		cfg.nbdListen = demoListen
	}
	if cfg.demo && !set["nbd-socket"] {
		cfg.nbdSocket = filepath.Join(cfg.stateDir, "nbd.sock")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := startServer(cfg, stdout)
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop()
	exitOnNextSignal()
	srv.log.Info("shutting down: finishing in-flight requests")
	return srv.shutdown()
}

// running is a started daemon with its listeners.
type running struct {
	cfg     serveConfig
	log     *slog.Logger
	d       *daemon
	control *http.Server
	metrics *http.Server
	served  chan error
	addrs   map[string]string // what listens where: nbd-tcp, nbd-unix, control, metrics
}

// startServer restores the state, then opens every listener.
func startServer(cfg serveConfig, stdout io.Writer) (*running, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q", errUsage, cfg.logLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := checkPrivateDir(cfg.stateDir); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	state := &stateStore{dir: cfg.stateDir}
	saved, unreadable, err := state.open()
	if err != nil {
		return nil, err
	}
	for _, err := range unreadable {
		log.Error("device state file skipped", "err", err)
	}
	r := &running{cfg: cfg, log: log, served: make(chan error, 4), addrs: map[string]string{}}
	r.d = newDaemon(log, state, cfg.metricsListen != "")
	r.d.unreadableStates = len(unreadable)
	r.d.open = targets.OpenOptions{Timeout: cfg.openTimeout, AllowPrefixes: cfg.allowPaths}
	cfg.nbd.apply(r.d.nbd)
	r.d.restore(saved)
	if len(saved) > 0 {
		log.Info("restored devices", "count", len(saved), "broken", r.d.brokenCount(), "state", state.devicesDir())
	}
	if cfg.demo {
		if err := r.d.ensureDemo(cfg.stateDir); err != nil {
			r.d.closeAll(context.Background())
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	if err := r.listen(); err != nil {
		r.abort()
		return nil, err
	}
	r.banner(stdout)
	return r, nil
}

// listen opens every listener and serves each.
func (r *running) listen() error {
	if r.cfg.nbdListen != "" {
		l, err := net.Listen("tcp", r.cfg.nbdListen)
		if err != nil {
			return fmt.Errorf("NBD listener: %w", err)
		}
		r.addrs["nbd-tcp"] = l.Addr().String()
		go func() { r.served <- ignoreClosed(r.d.nbd.Serve(l)) }()
	}
	if r.cfg.nbdSocket != "" {
		l, err := listenUnix(r.cfg.nbdSocket, 0o660)
		if err != nil {
			return fmt.Errorf("NBD socket: %w", err)
		}
		r.addrs["nbd-unix"] = r.cfg.nbdSocket
		go func() { r.served <- ignoreClosed(r.d.nbd.Serve(l)) }()
	}
	if r.cfg.metricsListen != "" {
		l, err := net.Listen("tcp", r.cfg.metricsListen)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		r.addrs["metrics"] = l.Addr().String()
		r.metrics = &http.Server{Handler: metricsHandler(r.d, r.cfg.pprof), ReadTimeout: 10 * time.Second,
			IdleTimeout: time.Minute, MaxHeaderBytes: 64 << 10}
		go func() { r.served <- ignoreClosed(r.metrics.Serve(l)) }()
	}
	// The control socket comes last: once it answers, every listener is
	// up (scripts and tests wait on it as the daemon's sign of readiness).
	cl, err := listenUnix(r.cfg.control, 0o600)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	r.addrs["control"] = r.cfg.control
	r.control = &http.Server{Handler: r.d.apiHandler(), ReadTimeout: r.cfg.controlTimeout,
		IdleTimeout: r.cfg.controlTimeout, MaxHeaderBytes: 64 << 10}
	go func() { r.served <- ignoreClosed(r.control.Serve(cl)) }()
	return nil
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, nbdserver.ErrServerClosed) {
		return nil
	}
	return err
}

func (r *running) banner(w io.Writer) {
	r.log.Info("gdm serving", "version", versionString(), "state", r.cfg.stateDir, "control", r.addrs["control"],
		"nbd_tcp", r.addrs["nbd-tcp"], "nbd_unix", r.addrs["nbd-unix"], "metrics", r.addrs["metrics"])
	if !r.cfg.demo {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\ngdm demo: device %q, 1 GiB striped over 4 sparse files in %s\n\n", "demo", filepath.Join(r.cfg.stateDir, "demo"))
	if a := r.addrs["nbd-tcp"]; a != "" {
		host, port, _ := net.SplitHostPort(a)
		fmt.Fprintf(&b, "  NBD URI:       nbd://%s/demo\n", a)
		fmt.Fprintf(&b, "  kernel client: nbd-client %s %s /dev/nbd0 -N demo\n", host, port)
		fmt.Fprintf(&b, "  inspect:       nbdinfo nbd://%s/demo\n", a)
		fmt.Fprintf(&b, "  (TCP is open to every local user: fine for the demo's own files; gdm serve without --demo listens on a UNIX socket only)\n")
	}
	if s := r.addrs["nbd-unix"]; s != "" {
		fmt.Fprintf(&b, "  NBD socket:    nbd+unix:///demo?socket=%s\n", s)
	}
	if m := r.addrs["metrics"]; m != "" {
		fmt.Fprintf(&b, "  metrics:       http://%s/metrics\n", m)
	}
	fmt.Fprintf(&b, "  verbs:         GDM_CONTROL=%s gdm status demo\n\n", r.addrs["control"])
	fmt.Fprint(w, b.String())
}

// shutdown stops accepting, lets in-flight requests finish (each connection
// flushes as it ends), then flushes and destroys every table, all within
// --shutdown-timeout: whatever is stuck past it (a hung backing device, a
// verb draining a table) is abandoned and reported, and the process exits.
func (r *running) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.shutdownWait)
	defer cancel()
	var errs []error
	if err := r.d.nbd.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("NBD shutdown: %w", err))
	}
	if r.metrics != nil {
		r.metrics.Shutdown(ctx)
	}
	if err := r.control.Shutdown(ctx); err != nil {
		r.control.Close()
	}
	if err := r.d.closeAll(ctx); err != nil {
		errs = append(errs, err)
	}
	os.Remove(r.cfg.control)
	if r.cfg.nbdSocket != "" {
		os.Remove(r.cfg.nbdSocket)
	}
	r.log.Info("gdm stopped")
	return errors.Join(errs...)
}

// abort closes whatever startServer opened before it failed.
func (r *running) abort() {
	r.d.nbd.Close()
	if r.control != nil {
		r.control.Close()
	}
	if r.metrics != nil {
		r.metrics.Close()
	}
	r.d.closeAll(context.Background())
}
