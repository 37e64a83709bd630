package targets

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
	"golang.org/x/sys/unix"
)

// TestRemoteDev opens an export by two spellings of its URI (one device;
// a third with other options is refused, as one client cannot have both),
// and does every Dev operation through it.
func TestRemoteDev(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	m.SetHole(2)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	set := NewDevSet(false)
	d, err := set.Open(s.URI("a"))
	if err != nil {
		t.Fatal(err)
	}
	other := "nbd+unix:///a?socket=" + filepath.Dir(s.Path) + "/./nbd.sock"
	if d2, err := set.Open(other); err != nil || d2 != d {
		t.Fatalf("second spelling opened another device (%v)", err)
	}
	if _, err := set.Open(other + "&timeout=9s"); !errors.Is(err, ErrBadURI) || !strings.Contains(err.Error(), "timeout=9s") {
		t.Fatalf("the export again with another timeout: %v, want ErrBadURI naming the options", err)
	}
	if !d.Remote() || d.Size() != 1<<20 || d.Identity().Remote == "" || !strings.Contains(d.Identity().String(), "NBD export") {
		t.Fatalf("remote dev: size %d, identity %v", d.Size(), d.Identity())
	}
	mustOK(t, d.WriteAt(bytes.Repeat([]byte{7}, 8192), 4096))
	mustOK(t, d.Sync())
	if m.Flushes() != 1 || d.Syncs() != 1 || m.At(4096, 1)[0] != 7 {
		t.Fatalf("after write and sync: flushes %d syncs %d", m.Flushes(), d.Syncs())
	}
	mustOK(t, d.Trim(4096, 512))
	mustOK(t, d.Zero(8192, 512, ZeroFlags{NoHole: true}))
	if err := d.Zero(0, 512, ZeroFlags{Fast: true}); err != ErrNotSupported {
		t.Fatalf("fast zero: %v", err)
	}
	p := make([]byte, 8192)
	mustOK(t, d.ReadAt(p, 4096))
	want := append(append(make([]byte, 512), bytes.Repeat([]byte{7}, 3584)...), append(make([]byte, 512), bytes.Repeat([]byte{7}, 3584)...)...)
	if !bytes.Equal(p, want) {
		t.Fatal("read back other data")
	}
	got := collect(t, d.Extents, 0, 16384)
	if !equalExtents(got, []Extent{{8192, 0}, {4096, 3}, {4096, 0}}) {
		t.Fatalf("extents %v", got)
	}
	if err := d.ReadAt(make([]byte, 2), 1<<20-1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("read past the end: %v", err)
	}
	mustOK(t, set.Close())
	if !d.Closed() || d.ReadAt(p, 0) == nil {
		t.Fatal("the device still reads after its set closed")
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRemoteLinear: a linear line over an export takes its size from the
// export (one sector too many is refused), and its spliced reads move the
// export's bytes into the pipe.
func TestRemoteLinear(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	m.Set(4096, []byte("remote"))
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	set := NewDevSet(false)
	defer set.Close()
	if _, err := newLinear([]string{s.URI("a"), "1"}, 2048, set); !errors.Is(err, ErrDeviceTooSmall) {
		t.Fatalf("linear past the export's end: %v", err)
	}
	tg, err := newLinear([]string{s.URI("a"), "8"}, 2040, set)
	if err != nil {
		t.Fatal(err)
	}
	var fds [2]int
	mustOK(t, unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	mustOK(t, tg.SpliceTo(context.Background(), fds[1], 0, 4096))
	got := make([]byte, 4097)
	if n, err := unix.Read(fds[0], got); err != nil || n != 4096 || string(got[:6]) != "remote" {
		t.Fatalf("spliced %d bytes %q (%v), want 4096 starting \"remote\"", n, got[:6], err)
	}
	p := make([]byte, 6)
	mustOK(t, tg.ReadAt(context.Background(), p, 0))
	if string(p) != "remote" {
		t.Fatalf("read %q", p)
	}
}

// TestRemoteRefusals: a read-only export for a writable table, a socket
// outside the allowed prefixes, a dead socket.
func TestRemoteRefusals(t *testing.T) {
	s := nbdtest.Start(t, nbdtest.Exports{"ro": nbdtest.NewMem(4096)})
	if _, err := NewDevSet(false).Open(s.URI("ro")); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("read-only export, writable set: %v", err)
	}
	ro := NewDevSet(true)
	if _, err := ro.Open(s.URI("ro")); err != nil {
		t.Fatalf("read-only export, read-only set: %v", err)
	}
	ro.Close()
	limited := NewDevSetWith(false, OpenOptions{AllowPrefixes: []string{t.TempDir()}})
	if _, err := limited.Open(s.URI("ro")); !errors.Is(err, ErrPathNotAllowed) {
		t.Fatalf("socket outside the allowed prefixes: %v", err)
	}
	dead := "nbd+unix:///x?socket=" + filepath.Join(t.TempDir(), "none.sock")
	if _, err := NewDevSet(false).Open(dead); err == nil {
		t.Fatal("opened an export on a socket nobody listens on")
	}
}

// TestRemoteDown stops the server under a device: I/O fails with EIO, the
// device says it is down, and it comes back by itself with the server. A
// set whose server stopped answering closes without waiting for it.
func TestRemoteDown(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	set := NewDevSet(false)
	d, err := set.Open(s.URI("a") + "&timeout=300ms")
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := d.ReadAt(make([]byte, 512), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read with the server down: %v", err)
	}
	testkit.WaitFor(t, 10*time.Second, "device down", d.Down)
	s.Start()
	testkit.WaitFor(t, 10*time.Second, "device back", func() bool { return d.ReadAt(make([]byte, 512), 0) == nil })
	if d.Down() || d.RemoteStats().Redials == 0 {
		t.Fatalf("after the server came back: down %v, stats %+v", d.Down(), d.RemoteStats())
	}
	gate := make(chan struct{})
	defer close(gate)
	m.SetGate(gate) // the server stops answering
	if err := d.WriteAt(make([]byte, 512), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write to a silent server: %v", err)
	}
	mustOK(t, set.Close())
}

// TestRemoteStriped stripes over two exports and a local file, 8-sector
// chunks: each chunk lands on its leg, FUA flushes the remote legs, and
// the data reads back.
func TestRemoteStriped(t *testing.T) {
	a, b := nbdtest.NewMem(64<<10), nbdtest.NewMem(64<<10)
	sa := nbdtest.Start(t, nbdtest.Exports{"a": a})
	sb := nbdtest.Start(t, nbdtest.Exports{"b": b})
	local := tempFile(t, 64<<10)
	set := NewDevSet(false)
	defer set.Close()
	tg, err := newStriped([]string{"3", "8", sa.URI("a"), "0", sb.URI("b"), "0", local, "0"}, 3*64, set)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3*4096)
	for i := range data {
		data[i] = byte(i/4096 + 1) // chunk k holds k+1
	}
	mustOK(t, tg.WriteAt(context.Background(), data, 0, FUA))
	if a.At(0, 1)[0] != 1 || b.At(0, 1)[0] != 2 || a.Flushes() != 1 || b.Flushes() != 1 {
		t.Fatalf("legs hold %d and %d, flushes %d and %d", a.At(0, 1)[0], b.At(0, 1)[0], a.Flushes(), b.Flushes())
	}
	got := make([]byte, len(data))
	mustOK(t, tg.ReadAt(context.Background(), got, 0))
	if !bytes.Equal(got, data) {
		t.Fatal("striped read back other data")
	}
	if st := tg.Status(StatusInfo); !strings.HasSuffix(st, " 1 AAA") {
		t.Fatalf("status with every leg up: %q", st)
	}
	sb.Stop() // a leg whose host is down shows D before any I/O fails on it
	testkit.WaitFor(t, 10*time.Second, "the second leg D", func() bool { return strings.HasSuffix(tg.Status(StatusInfo), " 1 ADA") })
}

// A socket whose path is longer than sun_path (108 bytes) is dialled
// through its descriptor: a plain dial by name cannot reach it.
func TestRemoteLongSocketPath(t *testing.T) {
	s := nbdtest.Start(t, nbdtest.Exports{"a": nbdtest.NewMem(1 << 20)})
	long := t.TempDir()
	for len(long) < 200 {
		long = filepath.Join(long, strings.Repeat("d", 40))
	}
	if err := os.MkdirAll(long, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(long, "nbd.sock")
	if err := os.Link(s.Path, sock); err != nil { // the same socket, by a long name
		t.Fatal(err)
	}
	d, err := NewDevSet(false).Open("nbd+unix:///a?socket=" + sock)
	if err != nil {
		t.Fatalf("a socket %d bytes long: %v", len(sock), err)
	}
	defer d.Close()
	mustOK(t, d.WriteAt(bytes.Repeat([]byte{7}, 512), 0))
}
