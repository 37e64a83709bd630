package nbdclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// tlsConfig trusts dir's CA, names localhost, and presents the client
// certificate when withCert.
func tlsConfig(t *testing.T, dir string, withCert bool) *tls.Config {
	pem, err := os.ReadFile(filepath.Join(dir, "ca-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if withCert {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, "client-cert.pem"), filepath.Join(dir, "client-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}

// TestNbdkitTLS: nbdkit --tls=require with certificates made here, and
// client certificates verified. Without TLS, or without the client
// certificate, or trusting another CA, the client gets no export.
func TestNbdkitTLS(t *testing.T) {
	dir := testkit.NewTLSCerts(t).Dir
	sock := filepath.Join(dir, "tls.sock")
	nbdtest.StartTool(t, sock, "nbdkit", "-f", "-U", sock, "--tls=require", "--tls-certificates="+dir, "--tls-verify-peer", "memory", "8M")
	ctx := testCtx(t)
	opts := Options{Network: "unix", Address: sock, TLS: tlsConfig(t, dir, true)}
	cl, err := Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	exercise(t, cl)

	opts.TLS = nil
	if _, err := Dial(ctx, opts); err == nil {
		t.Error("a plain client got an export from --tls=require")
	}
	opts.TLS = tlsConfig(t, dir, false)
	if _, err := Dial(ctx, opts); err == nil {
		t.Error("a client without a certificate got an export from --tls-verify-peer")
	}
	other := testkit.NewTLSCerts(t).Dir
	opts.TLS = tlsConfig(t, other, true)
	var uerr x509.UnknownAuthorityError
	if _, err := Dial(ctx, opts); !errors.As(err, &uerr) {
		t.Errorf("a server signed by an untrusted CA: %v", err)
	}
}

// TestTLSRefused: gdm's server without TLS configured refuses STARTTLS, and the
// client does not fall back to plain text.
func TestTLSRefused(t *testing.T) {
	s := nbdtest.Start(t, nbdtest.Exports{"a": nbdtest.NewMem(4096)})
	_, err := Dial(testCtx(t), Options{Network: "unix", Address: s.Path, Export: "a", TLS: &tls.Config{ServerName: "localhost"}})
	if !errors.Is(err, ErrTLSRefused) {
		t.Fatalf("STARTTLS to a server without TLS: %v", err)
	}
}

// TestGdmServerTLS: the client and gdm's own server, TLS required with
// client certificates: in with the certificate, refused without it.
func TestGdmServerTLS(t *testing.T) {
	certs := testkit.NewTLSCerts(t)
	cfg := &tls.Config{Certificates: []tls.Certificate{certs.Server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: certs.Pool}
	s := nbdtest.StartTLS(t, nbdtest.Exports{"a": nbdtest.NewMem(8 << 20)}, cfg)
	opts := Options{Network: "unix", Address: s.Path, Export: "a", TLS: tlsConfig(t, certs.Dir, true)}
	cl, err := Dial(testCtx(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	exercise(t, cl)
	opts.TLS = tlsConfig(t, certs.Dir, false)
	if c, err := Dial(testCtx(t), opts); err == nil {
		c.Close()
		t.Fatal("a client without a certificate got an export")
	}
}
