package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gdm-project/gdm/pkg/nbdserver"
	"github.com/gdm-project/gdm/pkg/targets"
)

// Running is a started daemon with its listeners.
type Running struct {
	cfg     Config
	log     *slog.Logger
	d       *daemon
	control *http.Server
	metrics *http.Server
	served  chan error
	notify  *notifier         // systemd's sd_notify, a no-op outside systemd
	tls     *tlsFiles         // nil without TLS
	stopHUP func()            // ends the SIGHUP watch; nil without TLS
	addrs   map[string]string // what listens where: nbd-tcp, nbd-unix, control, metrics
}

// Start restores the state, then opens every listener; the banner (the
// demo's, with its addresses) goes to stdout.
func Start(cfg Config, stdout io.Writer) (*Running, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if err := checkPrivateDir(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	state := &stateStore{dir: cfg.StateDir}
	saved, unreadable, err := state.open()
	if err != nil {
		return nil, err
	}
	for _, err := range unreadable {
		log.Error("device state file skipped", "err", err)
	}
	r := &Running{cfg: cfg, log: log, served: make(chan error, 4), addrs: map[string]string{}}
	r.d = newDaemon(log, state, cfg.MetricsListen != "")
	r.d.version = cfg.Version
	r.d.unreadableStates = len(unreadable)
	r.d.open = targets.OpenOptions{Timeout: cfg.OpenTimeout, AllowPrefixes: cfg.AllowPaths, BlockPageCache: cfg.BlockPageCache, FileDirect: cfg.FileDirect}
	cfg.NBD.apply(r.d.nbd)
	if r.tls, err = newTLSFiles(cfg.TLS); err != nil {
		return nil, err
	}
	if r.tls != nil {
		r.d.nbd.TLS, r.d.nbd.TLSRequired = r.tls.serverConfig(), cfg.TLS.Mode == TLSRequire
	}
	r.d.restore(saved)
	r.d.reattachAll()
	if len(saved) > 0 {
		log.Info("restored devices", "count", len(saved), "broken", r.d.brokenCount(), "state", state.devicesDir())
	}
	if cfg.Demo {
		if err := r.d.ensureDemo(cfg.StateDir); err != nil {
			r.d.closeAll(context.Background())
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	if err := r.listen(); err != nil {
		r.abort()
		return nil, err
	}
	r.banner(stdout)
	if r.tls != nil {
		r.stopHUP = r.watchHUP()
	}
	r.notify = newNotifier()
	if err := r.notify.ready(len(r.d.list())); err != nil {
		log.Warn("cannot tell systemd gdm is ready", "err", err)
	}
	r.notify.startWatchdog(func() { r.d.list() })
	return r, nil
}

// listen opens every listener and serves each.
func (r *Running) listen() error {
	if r.cfg.NBDListen != "" {
		l, err := net.Listen("tcp", r.cfg.NBDListen)
		if err != nil {
			return fmt.Errorf("NBD listener: %w", err)
		}
		r.addrs["nbd-tcp"] = l.Addr().String()
		go func() { r.served <- ignoreClosed(r.d.nbd.Serve(l)) }()
	}
	if r.cfg.NBDSocket != "" {
		l, err := listenUnix(r.cfg.NBDSocket, 0o660)
		if err != nil {
			return fmt.Errorf("NBD socket: %w", err)
		}
		r.addrs["nbd-unix"] = r.cfg.NBDSocket
		go func() { r.served <- ignoreClosed(r.d.nbd.Serve(l)) }()
	}
	if r.cfg.MetricsListen != "" {
		l, err := net.Listen("tcp", r.cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		r.addrs["metrics"] = l.Addr().String()
		limited := newLimitListener(l, maxMetricsConns)
		r.metrics = &http.Server{Handler: metricsHandler(r.d, r.cfg.Pprof), ReadTimeout: 10 * time.Second,
			IdleTimeout: time.Minute, MaxHeaderBytes: 64 << 10, ConnState: limited.track}
		go func() { r.served <- ignoreClosed(r.metrics.Serve(limited)) }()
	}
	// The control socket comes last: once it answers, every listener is
	// up (scripts and tests wait on it as the daemon's sign of readiness).
	cl, err := listenUnix(r.cfg.Control, 0o600)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	r.addrs["control"] = r.cfg.Control
	limited := newLimitListener(cl, maxControlConns)
	r.control = &http.Server{Handler: r.d.apiHandler(), ReadTimeout: r.cfg.ControlTimeout,
		IdleTimeout: r.cfg.ControlTimeout, MaxHeaderBytes: 64 << 10, ConnState: limited.track}
	go func() { r.served <- ignoreClosed(r.control.Serve(limited)) }()
	return nil
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, nbdserver.ErrServerClosed) {
		return nil
	}
	return err
}

func (r *Running) banner(w io.Writer) {
	r.log.Info("gdm serving", "version", r.cfg.Version, "state", r.cfg.StateDir, "control", r.addrs["control"],
		"nbd_tcp", r.addrs["nbd-tcp"], "nbd_unix", r.addrs["nbd-unix"], "metrics", r.addrs["metrics"])
	if !r.cfg.Demo {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\ngdm demo: device %q, 1 GiB striped over 4 sparse files in %s\n\n", "demo", filepath.Join(r.cfg.StateDir, "demo"))
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

// controlGrace is how long a shutdown waits for control requests to end
// before it closes their connections.
const controlGrace = time.Second

// Shutdown stops accepting, lets in-flight requests finish (each connection
// flushes as it ends), then flushes and destroys every table, all within
// --shutdown-timeout: whatever is stuck past it (a hung backing device, a
// verb draining a table) is abandoned and reported, and the process exits.
func (r *Running) Shutdown() error {
	r.log.Info("shutting down: finishing in-flight requests")
	r.notify.stopping()
	if r.stopHUP != nil {
		r.stopHUP()
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownWait)
	defer cancel()
	var errs []error
	if err := r.d.nbd.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("NBD shutdown: %w", err))
	}
	if err := r.d.shutdownAttached(ctx); err != nil {
		errs = append(errs, fmt.Errorf("NBD shutdown (attached devices): %w", err))
	}
	if r.metrics != nil {
		r.metrics.Shutdown(ctx)
	}
	// Control clients get a short grace, not the flush's budget: a verb
	// still running is abandoned anyway, and one client that stops
	// reading its answer must not leave the tables unflushed.
	cctx, ccancel := context.WithTimeout(ctx, controlGrace)
	if err := r.control.Shutdown(cctx); err != nil {
		r.control.Close()
	}
	ccancel()
	if err := r.d.closeAll(ctx); err != nil {
		errs = append(errs, err)
	}
	os.Remove(r.cfg.Control)
	if r.cfg.NBDSocket != "" {
		os.Remove(r.cfg.NBDSocket)
	}
	r.log.Info("gdm stopped")
	return errors.Join(errs...)
}

// abort closes whatever startServer opened before it failed.
func (r *Running) abort() {
	r.d.nbd.Close()
	r.d.att.srv.Close()
	if r.control != nil {
		r.control.Close()
	}
	if r.metrics != nil {
		r.metrics.Close()
	}
	r.d.closeAll(context.Background())
}
