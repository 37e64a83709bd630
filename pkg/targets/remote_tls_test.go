package targets

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// TestRemoteTLS opens an nbds+unix device on nbdkit --tls=require, which
// verifies client certificates: with the certificate directory it works;
// without the client certificate in it, or without the CA (the system's
// roots do not know the test's), the open fails.
func TestRemoteTLS(t *testing.T) {
	dir := testkit.NewTLSCerts(t).Dir
	sock := filepath.Join(dir, "tls.sock")
	nbdtest.StartTool(t, sock, "nbdkit", "-f", "-U", sock, "--tls=require", "--tls-certificates="+dir, "--tls-verify-peer", "memory", "1M")
	uri := "nbds+unix:///?socket=" + sock + "&tls-hostname=localhost&tls-certificates="
	set := NewDevSet(false)
	defer set.Close()
	d, err := set.Open(uri + dir)
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, d.WriteAt([]byte("secret"), 512))
	p := make([]byte, 6)
	mustOK(t, d.ReadAt(p, 512))
	if !bytes.Equal(p, []byte("secret")) || d.Size() != 1<<20 || d.Identity().Remote == "" {
		t.Fatalf("read %q, size %d", p, d.Size())
	}
	// TLS data cannot be spliced: the caller reads the ordinary way.
	var fds [2]int
	mustOK(t, unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if err := d.SpliceTo(fds[1], 0, 4096); err != ErrPipeFull {
		t.Fatalf("splice over TLS: %v, want ErrPipeFull", err)
	}
	caOnly := t.TempDir()
	ca, _ := os.ReadFile(filepath.Join(dir, "ca-cert.pem"))
	os.WriteFile(filepath.Join(caOnly, "ca-cert.pem"), ca, 0o600)
	if _, err := NewDevSet(false).Open(uri + caOnly); err == nil {
		t.Error("opened without a client certificate")
	}
	if _, err := NewDevSet(false).Open(uri + t.TempDir()); err == nil {
		t.Error("opened trusting only the system's roots")
	}
}
