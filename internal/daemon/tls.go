package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

// TLSConfig is NBD over TLS as `gdm serve` is told it: the mode (off, on:
// offered, require: nothing else is answered, as nbdkit's --tls), the
// server's certificate and key files (PEM), and optionally a CA file whose
// certificates then sign every client's (required and verified).
type TLSConfig struct {
	Mode     string
	Cert     string
	Key      string
	ClientCA string
}

// TLS modes.
const (
	TLSOff     = "off"
	TLSOn      = "on"
	TLSRequire = "require"
)

// tlsFiles holds the certificates as last loaded: each TLS handshake takes
// the current ones, so a reload (SIGHUP) changes what new sessions get and
// leaves sessions already up alone.
type tlsFiles struct {
	cfg TLSConfig
	cur atomic.Pointer[tlsLoaded]
}

type tlsLoaded struct {
	cert    tls.Certificate
	clients *x509.CertPool // nil: no client certificates asked for
}

// newTLSFiles checks the mode and loads the files; nil for mode off.
func newTLSFiles(cfg TLSConfig) (*tlsFiles, error) {
	switch cfg.Mode {
	case "", TLSOff:
		if cfg.Cert != "" || cfg.Key != "" || cfg.ClientCA != "" {
			return nil, errors.New("TLS files given with --tls off: say --tls on or --tls require")
		}
		return nil, nil
	case TLSOn, TLSRequire:
	default:
		return nil, fmt.Errorf("--tls %q: want off, on or require", cfg.Mode)
	}
	if cfg.Cert == "" || cfg.Key == "" {
		return nil, fmt.Errorf("--tls %s needs --tls-cert and --tls-key", cfg.Mode)
	}
	f := &tlsFiles{cfg: cfg}
	return f, f.load()
}

// load reads the files; on an error the certificates in use stay.
func (f *tlsFiles) load() error {
	cert, err := tls.LoadX509KeyPair(f.cfg.Cert, f.cfg.Key)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	l := &tlsLoaded{cert: cert}
	if f.cfg.ClientCA != "" {
		pem, err := os.ReadFile(f.cfg.ClientCA)
		if err != nil {
			return fmt.Errorf("TLS client CA: %w", err)
		}
		l.clients = x509.NewCertPool()
		if !l.clients.AppendCertsFromPEM(pem) {
			return fmt.Errorf("TLS client CA %s: no PEM certificate in it", f.cfg.ClientCA)
		}
	}
	f.cur.Store(l)
	return nil
}

// serverConfig is the NBD server's TLS configuration: TLS 1.2 or later,
// with the certificates current at each handshake.
func (f *tlsFiles) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			l := f.cur.Load()
			c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{l.cert}}
			if l.clients != nil {
				c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, l.clients
			}
			return c, nil
		},
	}
}

// ReloadTLS loads the TLS files again (what SIGHUP does); connections
// keep their sessions. Without TLS it does nothing.
func (r *Running) ReloadTLS() error {
	if r.tls == nil {
		return nil
	}
	if err := r.tls.load(); err != nil {
		r.log.Error("TLS files not reloaded; the old ones stay in use", "err", err)
		return err
	}
	r.log.Info("TLS files reloaded", "cert", r.tls.cfg.Cert)
	return nil
}

// watchHUP reloads the TLS files on each SIGHUP until stop is closed.
func (r *Running) watchHUP() (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				r.ReloadTLS()
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
