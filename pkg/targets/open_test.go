package targets

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// realTempDir is a fresh temp dir with every symlink in its path resolved,
// so that it compares equal to what /proc/self/fd reports.
func realTempDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceWithSymlink atomically makes path a symlink to target.
func replaceWithSymlink(t *testing.T, path, target string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Anything but a regular file or block device is refused by its type, before
// any open: a FIFO opened for reading would block the daemon for good.
func TestOpenRefusesNonDevices(t *testing.T) {
	dir := realTempDir(t)
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ path, want string }{
		{fifo, "is a FIFO"},
		{"/dev/null", "is a character device"},
		{sock, "is a socket"},
		{dir, "is a directory"},
		{link, "is a FIFO"},
	}
	for _, c := range cases {
		for _, ro := range []bool{true, false} {
			opened := false
			opts := OpenOptions{Timeout: 5 * time.Second, hooks: &openHooks{
				open: func(p string, f int, m uint32) (int, error) { opened = true; return unix.Open(p, f, m) },
			}}
			d, err := openDev(c.path, ro, &opts)
			if err == nil {
				d.Close()
				t.Fatalf("%s (read-only %v) was opened", c.path, ro)
			}
			if !errors.Is(err, ErrBadDevice) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
				t.Errorf("%s (read-only %v): %v; want ErrBadDevice saying %q", c.path, ro, err, c.want)
			}
			if opened {
				t.Errorf("%s (read-only %v) was opened before it was refused", c.path, ro)
			}
		}
	}
}

// A path swapped between the stat and the open (for a FIFO, a character
// device or another file) is refused, and the open does not block.
func TestOpenSwapAfterStat(t *testing.T) {
	dir := realTempDir(t)
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "root-only")
	writeFile(t, other, 4096)
	cases := []struct{ target, want string }{
		{fifo, "is a FIFO"},
		{"/dev/null", "is a character device"},
		{other, "was replaced while being opened"},
	}
	for _, c := range cases {
		path := filepath.Join(dir, "a.img")
		writeFile(t, path, 4096)
		opts := OpenOptions{Timeout: 5 * time.Second, hooks: &openHooks{
			afterStat: func() { replaceWithSymlink(t, path, c.target) },
		}}
		d, err := openDev(path, true, &opts)
		if err == nil {
			d.Close()
			t.Fatalf("swap to %s: opened", c.target)
		}
		if !errors.Is(err, ErrBadDevice) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("swap to %s: %v; want ErrBadDevice saying %q", c.target, err, c.want)
		}
		os.Remove(path)
	}
}

// openFdsTo counts this process's descriptors open on path.
func openFdsTo(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == path {
			n++
		}
	}
	return n
}

// An open that hangs (here: a FIFO opened without O_NONBLOCK, by the test's
// open hook, as a hung NFS mount would) returns ErrOpenTimeout within its
// bound; when the open returns later its descriptor is closed.
func TestOpenTimeout(t *testing.T) {
	t.Run("hung-fifo", func(t *testing.T) {
		dir := realTempDir(t)
		path := filepath.Join(dir, "a.img")
		writeFile(t, path, 4096)
		fifo := filepath.Join(dir, "fifo")
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		abandoned := make(chan struct{})
		opts := OpenOptions{Timeout: 50 * time.Millisecond, hooks: &openHooks{
			open: func(_ string, f int, m uint32) (int, error) {
				return unix.Open(fifo, f&^unix.O_NONBLOCK, m)
			},
			abandoned: func() { close(abandoned) },
		}}
		start := time.Now()
		d, err := openDev(path, true, &opts)
		if !errors.Is(err, ErrOpenTimeout) {
			if d != nil {
				d.Close()
			}
			t.Fatalf("hung open: %v; want ErrOpenTimeout", err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("hung open took %v to time out (bound 50ms)", el)
		}
		// A writer lets the hung open return; it must then be closed.
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		<-abandoned
		if n := openFdsTo(t, fifo) - 1; n != 0 {
			t.Fatalf("%d descriptors of the late open still open", n)
		}
	})
	t.Run("too-many-hung", func(t *testing.T) {
		hungOpens.Add(maxHungOpens)
		defer hungOpens.Add(-maxHungOpens)
		opened := false
		opts := OpenOptions{hooks: &openHooks{open: func(p string, f int, m uint32) (int, error) {
			opened = true
			return unix.Open(p, f, m)
		}}}
		_, err := openDev(tempFile(t, 4096), false, &opts)
		if !errors.Is(err, ErrOpenTimeout) || !strings.Contains(err.Error(), "still hang") || opened {
			t.Fatalf("with %d opens hung: %v (opened %v); want ErrOpenTimeout before any open", maxHungOpens, err, opened)
		}
	})
	t.Run("late-success", func(t *testing.T) {
		path := filepath.Join(realTempDir(t), "a.img")
		writeFile(t, path, 4096)
		release, abandoned := make(chan struct{}), make(chan struct{})
		opts := OpenOptions{Timeout: 20 * time.Millisecond, hooks: &openHooks{
			open: func(p string, f int, m uint32) (int, error) {
				<-release
				return unix.Open(p, f, m)
			},
			abandoned: func() { close(abandoned) },
		}}
		if _, err := openDev(path, false, &opts); !errors.Is(err, ErrOpenTimeout) {
			t.Fatalf("hung open: %v; want ErrOpenTimeout", err)
		}
		close(release)
		<-abandoned
		if n := openFdsTo(t, path); n != 0 {
			t.Fatalf("the open that returned after its timeout left %d descriptors open", n)
		}
		if n := hungOpens.Load(); n != 0 {
			t.Fatalf("hung opens = %d after every open returned", n)
		}
	})
}

// A path that names another file than the one recorded is refused, whether
// it was replaced by a file or by a symlink to a root-only file; a symlink
// to the same file is the same identity.
func TestOpenExpectIdentity(t *testing.T) {
	dir := realTempDir(t)
	path := filepath.Join(dir, "a.img")
	writeFile(t, path, 4096)
	d, err := openDev(path, false, &OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := d.Identity()
	d.Close()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if id != (Identity{Dev: st.Dev, Ino: st.Ino}) || d.RealPath() != path {
		t.Fatalf("identity %+v real path %q; want inode %d on %d, %s", id, d.RealPath(), st.Ino, st.Dev, path)
	}
	expect := &OpenOptions{Expect: map[string]Identity{path: id}}

	same := filepath.Join(dir, "same")
	if err := os.Symlink(path, same); err != nil {
		t.Fatal(err)
	}
	expect.Expect[same] = id
	if d, err := openDev(same, false, expect); err != nil {
		t.Fatalf("a symlink to the expected file: %v", err)
	} else {
		d.Close()
	}

	secret := filepath.Join(dir, "root-only")
	writeFile(t, secret, 8192)
	other := filepath.Join(dir, "other")
	writeFile(t, other, 4096)
	for _, target := range []string{secret, other} {
		replaceWithSymlink(t, path, target)
		d, err := openDev(path, false, expect)
		if err == nil {
			d.Close()
			t.Fatalf("%s replaced by a symlink to %s was opened", path, target)
		}
		if !errors.Is(err, ErrIdentityChanged) || !strings.Contains(err.Error(), "was inode "+strconv.FormatUint(id.Ino, 10)) ||
			!strings.Contains(err.Error(), "load the table again") {
			t.Errorf("replaced by %s: %v; want ErrIdentityChanged naming the old inode", target, err)
		}
	}
	if err := os.Rename(other, path); err != nil { // a plain file put in its place
		t.Fatal(err)
	}
	if _, err := openDev(path, false, expect); !errors.Is(err, ErrIdentityChanged) {
		t.Errorf("replaced by another file: %v; want ErrIdentityChanged", err)
	}
	if d, err := openDev(path, false, &OpenOptions{}); err != nil {
		t.Errorf("without Expect the new file is refused: %v", err)
	} else {
		d.Close()
	}
}

// AllowPrefixes checks the opened descriptor's real path, by components.
func TestOpenAllowPrefixes(t *testing.T) {
	dir := realTempDir(t)
	for _, sub := range []string{"data", "database", "secret"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	inData := filepath.Join(dir, "data", "a.img")
	writeFile(t, inData, 4096)
	inDatabase := filepath.Join(dir, "database", "b.img")
	writeFile(t, inDatabase, 4096)
	secret := filepath.Join(dir, "secret", "c.img")
	writeFile(t, secret, 4096)
	escape := filepath.Join(dir, "data", "escape.img")
	if err := os.Symlink(secret, escape); err != nil {
		t.Fatal(err)
	}
	inward := filepath.Join(dir, "secret", "inward.img")
	if err := os.Symlink(inData, inward); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path     string
		prefixes []string
		ok       bool
	}{
		{inData, []string{filepath.Join(dir, "data")}, true},
		{inData, []string{filepath.Join(dir, "data") + "/"}, true},
		{inData, []string{"/nowhere", filepath.Join(dir, "data")}, true},
		{inData, []string{"/"}, true},
		{inData, nil, true},
		{inDatabase, []string{filepath.Join(dir, "data")}, false},
		{escape, []string{filepath.Join(dir, "data")}, false},
		{inward, []string{filepath.Join(dir, "data")}, true},
		{inData, []string{"data"}, false}, // relative prefixes match nothing
	}
	for _, c := range cases {
		d, err := openDev(c.path, true, &OpenOptions{AllowPrefixes: c.prefixes})
		if c.ok {
			if err != nil {
				t.Errorf("%s under %q: %v", c.path, c.prefixes, err)
				continue
			}
			d.Close()
			continue
		}
		if err == nil {
			d.Close()
			t.Errorf("%s under %q: allowed", c.path, c.prefixes)
		} else if !errors.Is(err, ErrPathNotAllowed) {
			t.Errorf("%s under %q: %v; want ErrPathNotAllowed", c.path, c.prefixes, err)
		}
	}
}

// A missing path is still an os.ErrNotExist, as callers test for.
func TestOpenMissing(t *testing.T) {
	_, err := openDev(filepath.Join(t.TempDir(), "nope"), false, &OpenOptions{})
	if !errors.Is(err, os.ErrNotExist) || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("missing path: %v", err)
	}
}
