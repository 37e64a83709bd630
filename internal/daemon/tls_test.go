package daemon

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// A TLS configuration that cannot work is refused at start, saying why.
func TestTLSConfigRefused(t *testing.T) {
	certs := testkit.NewTLSCerts(t)
	cert, key := filepath.Join(certs.Dir, "server-cert.pem"), filepath.Join(certs.Dir, "server-key.pem")
	for _, c := range []struct {
		tls  TLSConfig
		want string
	}{
		{TLSConfig{Mode: "yes", Cert: cert, Key: key}, `want off, on or require`},
		{TLSConfig{Mode: TLSRequire, Cert: cert}, "needs --tls-cert and --tls-key"},
		{TLSConfig{Mode: TLSOff, Cert: cert, Key: key}, "TLS files given with --tls off"},
		{TLSConfig{Mode: TLSOn, Cert: cert, Key: cert}, "TLS certificate"},
		{TLSConfig{Mode: TLSOn, Cert: cert, Key: key, ClientCA: key}, "no PEM certificate"},
	} {
		dir := t.TempDir()
		cfg := testConfig(dir)
		cfg.TLS = c.tls
		r, err := Start(cfg, nil)
		if err == nil {
			r.Shutdown()
			t.Fatalf("%+v: started", c.tls)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%+v: %v, want %q", c.tls, err, c.want)
		}
	}
}

// With --tls require the daemon's devices are reached only through TLS;
// new certificates loaded by ReloadTLS (SIGHUP) reach new sessions while
// a session already up goes on, and a broken file leaves the old ones in
// use.
func TestTLSReload(t *testing.T) {
	dir := t.TempDir()
	a, b := testkit.NewTLSCerts(t), testkit.NewTLSCerts(t)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	a.InstallServer(t, cert, key)
	cfg := testConfig(dir)
	cfg.TLS = TLSConfig{Mode: TLSRequire, Cert: cert, Key: key}
	td := startWith(t, dir, cfg)
	td.ok(t, "create", "z", "--table", "0 64 zero")
	if _, err := openNBD(cfg.NBDSocket, "z", nil); err == nil || !strings.Contains(err.Error(), "0x80000005") {
		t.Fatalf("GO without TLS: %v, want ERR_TLS_REQD (0x80000005)", err)
	}
	trust := func(c *testkit.TLSCerts) *tls.Config { return &tls.Config{RootCAs: c.Pool, ServerName: "localhost"} }
	old := dialNBDTLS(t, cfg.NBDSocket, "z", trust(a))

	b.InstallServer(t, cert, key)
	if err := td.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if _, err := openNBD(cfg.NBDSocket, "z", trust(a)); err == nil {
		t.Fatal("the old certificate still served after the reload")
	}
	dialNBDTLS(t, cfg.NBDSocket, "z", trust(b))
	if errno, _, err := old.do(0, 0, 512, nil); err != nil || errno != 0 {
		t.Fatalf("read on the session from before the reload: errno %d, %v", errno, err)
	}

	if err := os.WriteFile(cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := td.ReloadTLS(); err == nil {
		t.Fatal("a broken certificate file was loaded")
	}
	dialNBDTLS(t, cfg.NBDSocket, "z", trust(b))
}

// --tls-client-ca makes every client present a certificate that CA signed.
func TestTLSClientCA(t *testing.T) {
	dir := t.TempDir()
	certs := testkit.NewTLSCerts(t)
	cfg := testConfig(dir)
	cfg.TLS = TLSConfig{Mode: TLSOn, Cert: filepath.Join(certs.Dir, "server-cert.pem"),
		Key: filepath.Join(certs.Dir, "server-key.pem"), ClientCA: filepath.Join(certs.Dir, "ca-cert.pem")}
	td := startWith(t, dir, cfg)
	td.ok(t, "create", "z", "--table", "0 64 zero")
	anon := &tls.Config{RootCAs: certs.Pool, ServerName: "localhost"}
	if _, err := openNBD(cfg.NBDSocket, "z", anon); err == nil {
		t.Fatal("a client without a certificate got in")
	}
	signed := anon.Clone()
	signed.Certificates = []tls.Certificate{certs.Client}
	dialNBDTLS(t, cfg.NBDSocket, "z", signed)
}
