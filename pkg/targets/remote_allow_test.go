package targets

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// --allow-path confines an nbd+unix socket by its real path, at the open
// and again at every redial: a symlink in an allowed directory to a
// socket outside is refused, and so is one put where the socket was while
// the server was down; the leg stays down until the real socket is back.
func TestRemoteSocketAllowPath(t *testing.T) {
	inside := nbdtest.Start(t, nbdtest.Exports{"in": nbdtest.NewMem(4096)})
	outside := nbdtest.Start(t, nbdtest.Exports{"in": nbdtest.NewMem(4096)})
	allowed := filepath.Dir(inside.Path)
	opts := OpenOptions{AllowPrefixes: []string{allowed}}

	link := filepath.Join(allowed, "link.sock")
	if err := os.Symlink(outside.Path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDevSetWith(false, opts).Open("nbd+unix:///in?socket=" + link); !errors.Is(err, ErrPathNotAllowed) {
		t.Fatalf("a symlink to a socket outside: %v, want ErrPathNotAllowed", err)
	}

	set := NewDevSetWith(false, opts)
	defer set.Close()
	d, err := set.Open(inside.URI("in") + "&timeout=300ms")
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, d.WriteAt([]byte("inside"), 0))
	inside.Stop() // unlinks the socket
	if err := os.Symlink(outside.Path, inside.Path); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the leg down", d.Down)
	if err := d.ReadAt(make([]byte, 512), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read while the socket is a symlink out: %v, want EIO", err)
	}
	if n := d.RemoteStats().Redials; n != 0 {
		t.Fatalf("redialled %d times through a symlink out of the allowed directory", n)
	}
	if err := os.Remove(inside.Path); err != nil {
		t.Fatal(err)
	}
	inside.Start()
	p := make([]byte, 6)
	testkit.WaitFor(t, 10*time.Second, "the leg back", func() bool { return d.ReadAt(p, 0) == nil })
	if string(p) != "inside" {
		t.Fatalf("read %q after the real socket came back", p)
	}
}

// --allow-path confines the files of tls-certificates=DIR by their real
// paths: a directory outside, or a certificate file symlinked out of an
// allowed one, is refused before it is read; the same files inside are
// read.
func TestRemoteTLSFilesAllowPath(t *testing.T) {
	certs := testkit.NewTLSCerts(t).Dir
	allowed := t.TempDir()
	opts := &OpenOptions{AllowPrefixes: []string{allowed}}
	if _, err := (&remoteSpec{tls: true, tlsDir: certs}).tlsConfig(opts); !errors.Is(err, ErrPathNotAllowed) {
		t.Fatalf("a certificate directory outside: %v, want ErrPathNotAllowed", err)
	}
	for _, name := range []string{"ca-cert.pem", "client-cert.pem", "client-key.pem"} {
		if err := os.Symlink(filepath.Join(certs, name), filepath.Join(allowed, name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := (&remoteSpec{tls: true, tlsDir: allowed}).tlsConfig(opts); !errors.Is(err, ErrPathNotAllowed) {
		t.Fatalf("certificate files symlinked out: %v, want ErrPathNotAllowed", err)
	}
	for _, name := range []string{"ca-cert.pem", "client-cert.pem", "client-key.pem"} {
		b, err := os.ReadFile(filepath.Join(certs, name))
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(allowed, name))
		if err := os.WriteFile(filepath.Join(allowed, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := (&remoteSpec{tls: true, tlsDir: allowed}).tlsConfig(opts)
	if err != nil || cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("certificate files inside: %v", err)
	}
}
