package targets

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The files of tls-certificates=DIR are read only if they are regular
// files, and only so much of them: a FIFO named ca-cert.pem or
// client-cert.pem blocked the open for good (os.ReadFile waits for a
// writer), holding the load verb and the device's verb lock, and
// /dev/zero would have been read until the daemon ran out of memory.
func TestRemoteTLSFilesMustBeRegular(t *testing.T) {
	for _, name := range []string{"ca-cert.pem", "client-cert.pem"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := unix.Mkfifo(filepath.Join(dir, name), 0o600); err != nil {
				t.Fatal(err)
			}
			if name == "client-cert.pem" {
				writeFile(t, filepath.Join(dir, "client-key.pem"), 0)
			}
			spec := &remoteSpec{tls: true, tlsDir: dir}
			done := make(chan error, 1)
			go func() {
				_, err := spec.tlsConfig(&OpenOptions{})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrBadDevice) {
					t.Fatalf("a FIFO as %s: %v, want ErrBadDevice", name, err)
				}
			case <-time.After(10 * time.Second): // a bound on the test
				t.Fatalf("reading a FIFO as %s blocked", name)
			}
		})
	}
}

// A directory, a character device or an oversized file is refused by
// what it is, before anything is read from it.
func TestRemoteTLSFilesRefused(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca-cert.pem")
	spec := &remoteSpec{tls: true, tlsDir: dir}
	check := func(what string) {
		t.Helper()
		if _, err := spec.tlsConfig(&OpenOptions{}); !errors.Is(err, ErrBadDevice) {
			t.Fatalf("%s as ca-cert.pem: %v, want ErrBadDevice", what, err)
		}
		os.RemoveAll(ca)
	}
	if err := os.Mkdir(ca, 0o700); err != nil {
		t.Fatal(err)
	}
	check("a directory")
	if err := os.Symlink("/dev/zero", ca); err != nil {
		t.Fatal(err)
	}
	check("/dev/zero")
	writeFile(t, ca, maxTLSFile+1)
	check("a file over the bound")
}
