package targets

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/gdm-project/gdm/pkg/nbdclient"
)

// A remote Dev is an NBD export, served through pkg/nbdclient: the same
// Dev methods, the same DevSet rules (opened once per table, closed once
// at destroy). Its I/O cannot be cancelled by the request's context (Dev's
// methods take none, as pread cannot be cancelled either); the client's
// request timeout bounds each call instead, and a connection that drops is
// redialled and the request sent once more (see nbdclient). An export that
// cannot be reached answers EIO at once while the client waits to redial.

// openRemote dials the export a URI names, bounded by the open timeout,
// or by the URI's connect-timeout if that is shorter: a table may not make
// the daemon wait on its behalf longer than the daemon's own bound.
func openRemote(uri string, readOnly bool, opts *OpenOptions) (*Dev, error) {
	spec, err := parseRemote(uri)
	if err != nil {
		return nil, err
	}
	co := nbdclient.Options{Network: spec.network, Address: spec.address, Export: spec.export,
		RequestTimeout: spec.timeout, DialTimeout: spec.connectTimeout, OnChange: opts.onChange}
	if spec.network == "unix" {
		// Through a descriptor of the socket, with or without an allow
		// list: each dial checks what it reaches, and a socket path longer
		// than sun_path's 108 bytes can be dialled (/proc/self/fd/N is short).
		co.Dial = allowedUnixDialer(spec.address, opts) // remote_allow.go
	}
	if spec.tls {
		if co.TLS, err = spec.tlsConfig(opts); err != nil {
			return nil, fmt.Errorf("targets: %s: %w", uri, err)
		}
	}
	if co.DialTimeout == 0 || co.DialTimeout > opts.timeout() {
		co.DialTimeout = opts.timeout() // the daemon's bound on any open holds
	}
	ctx, cancel := context.WithTimeout(context.Background(), co.DialTimeout)
	defer cancel()
	cl, err := nbdclient.Dial(ctx, co)
	if err != nil {
		return nil, fmt.Errorf("targets: %s: %w", uri, err)
	}
	if !readOnly && cl.Info().Flags&nbdclient.FlagReadOnly != 0 {
		cl.Close()
		return nil, fmt.Errorf("targets: %s: the export is read-only: %w", uri, syscall.EROFS)
	}
	d := &Dev{path: uri, id: Identity{Remote: spec.key}, remote: cl, remoteOptions: spec.optionsText(), fd: -1, size: cl.Size(), readOnly: readOnly,
		blockSize: cl.Info().LogicalBlockSize()}
	if err := opts.checkIdentity(uri, d.id); err != nil {
		cl.Close()
		return nil, err
	}
	return d, nil
}

// tlsConfig builds the client's TLS configuration from the nbds options:
// the CA and client certificate files are read at every open, so a table
// loaded after they were renewed uses the new ones (readTLSFile says how,
// and how opts' allow-list applies to them).
func (r *remoteSpec) tlsConfig(opts *OpenOptions) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: r.tlsHost, InsecureSkipVerify: r.tlsNoVerify, MinVersion: tls.VersionTLS12}
	if r.tlsDir == "" {
		return cfg, nil
	}
	pem, err := readTLSFile(filepath.Join(r.tlsDir, "ca-cert.pem"), opts)
	switch {
	case err == nil:
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s/ca-cert.pem holds no certificate", r.tlsDir)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	certPEM, err := readTLSFile(filepath.Join(r.tlsDir, "client-cert.pem"), opts)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil // no client certificate: the server may not ask for one
	}
	if err != nil {
		return nil, err
	}
	keyPEM, err := readTLSFile(filepath.Join(r.tlsDir, "client-key.pem"), opts)
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	cfg.Certificates = []tls.Certificate{c}
	return cfg, nil
}

// devKey is the key a path is opened under in a DevSet: the canonical URI
// of an export, so that two spellings of it share one client; and the
// options that client was made with, which every spelling must repeat.
func devKey(path string) (key, options string, err error) {
	spec, err := parseRemote(path)
	if err != nil {
		return "", "", err
	}
	return spec.key, spec.optionsText(), nil
}

// optionsText is what the URI's options set, in one canonical form.
func (r *remoteSpec) optionsText() string {
	return fmt.Sprintf("timeout=%v connect-timeout=%v tls-certificates=%q tls-hostname=%q tls-verify-peer=%v",
		r.timeout, r.connectTimeout, r.tlsDir, r.tlsHost, !r.tlsNoVerify)
}

// Remote says whether the device is an NBD export.
func (d *Dev) Remote() bool { return d.remote != nil }

// Down says whether a remote device has no connection up now (its I/O
// fails with EIO until a redial succeeds). Always false for local ones.
func (d *Dev) Down() bool { return d.remote != nil && !d.remote.Connected() }

// RemoteStats are the fault counters of a remote device's client.
func (d *Dev) RemoteStats() nbdclient.Stats {
	if d.remote == nil {
		return nbdclient.Stats{}
	}
	return d.remote.Stats()
}

// The remote halves of Dev's methods; dev.go dispatches to them.

func (d *Dev) remoteErr(what string, off int64, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("targets: %s %s at %d: %w", what, d.path, off, err)
}

// remoteSplice moves a range from the export into pipe, straight from the
// socket (nbdclient.SpliceRead). Where the client cannot (TLS, a pipe
// without room, a dropped connection) it answers ErrPipeFull: the caller
// discards the pipe and reads the range the ordinary way, which retries.
func (d *Dev) remoteSplice(pipe int, off, n int64) error {
	return d.spliceErr(off, d.remote.SpliceRead(context.Background(), pipe, off, n))
}

// spliceErr is a spliced read's outcome in the device's words: the
// client's ErrNoSplice (not moved that way) is ErrPipeFull, anything else
// a read error of the device.
func (d *Dev) spliceErr(off int64, err error) error {
	if errors.Is(err, nbdclient.ErrNoSplice) {
		return ErrPipeFull
	}
	return d.remoteErr("read", off, err)
}

func (d *Dev) remoteSync(ctx context.Context) error {
	if err := d.remote.Flush(ctx); err != nil {
		return d.remoteErr("flush", 0, err)
	}
	d.syncs.Add(1)
	return nil
}

func (d *Dev) remoteZero(off, length int64, flags ZeroFlags) error {
	err := d.remote.Zero(context.Background(), off, length, flags.NoHole, flags.Fast)
	if flags.Fast && errors.Is(err, syscall.ENOTSUP) {
		return ErrNotSupported
	}
	return d.remoteErr("zero", off, err)
}

func (d *Dev) remoteExtents(off, length int64, emit func(Extent) bool) error {
	err := d.remote.Extents(context.Background(), off, length, func(e nbdclient.Extent) bool {
		return emit(Extent{Length: e.Length, Flags: e.Flags & (ExtentHole | ExtentZero)})
	})
	return d.remoteErr("block status", off, err)
}
