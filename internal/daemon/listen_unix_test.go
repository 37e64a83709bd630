package daemon

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The socket appears at its path only by a rename, already with its mode:
// an inotify watch on the directory sees no IN_CREATE of the name (what a
// bind at the path itself makes), and the mode is the one asked for even
// under umask 000.
func TestListenUnixNoLooseWindow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ATTRIB); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0)
	l, err := listenUnix(path, 0o600)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket at %s: %v %v; want a socket of mode 0600", path, fi.Mode(), err)
	}
	buf := make([]byte, 4096)
	n, _ := unix.Read(fd, buf)
	var moved bool
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
		off += unix.SizeofInotifyEvent + int(ev.Len)
		if name != "control.sock" {
			continue
		}
		if ev.Mask&(unix.IN_CREATE|unix.IN_ATTRIB) != 0 {
			t.Fatalf("%s was created or chmod-ed in place (event %#x): a window with the umask's mode", path, ev.Mask)
		}
		moved = moved || ev.Mask&unix.IN_MOVED_TO != 0
	}
	if !moved {
		t.Fatal("the socket did not arrive by a rename")
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the renamed socket: %v", err)
	}
	c.Close()
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left behind in %s: %v", dir, ents)
	}
}

// A stale socket is replaced; a live one, a regular file, a symlink or a
// directory at the path is refused, and left as it was.
func TestListenUnixWhatIsThere(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		setup func(path string)
		want  string // "" for accepted
	}{
		{"nothing", func(string) {}, ""},
		{"stale-socket", func(p string) {
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}, ""},
		{"live-socket", func(p string) {
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}, "in use by a running process"},
		{"regular-file", func(p string) { os.WriteFile(p, []byte("keep"), 0o600) }, "is a regular file"},
		{"symlink", func(p string) { os.Symlink(secret, p) }, "is a symlink"},
		{"directory", func(p string) { os.Mkdir(p, 0o700) }, "is a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".sock")
			c.setup(path)
			before, _ := os.Lstat(path)
			l, err := listenUnix(path, 0o600)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				l.Close()
				return
			}
			if err == nil {
				l.Close()
				t.Fatalf("listened over a %s", c.name)
			}
			if !errors.Is(err, errSocketPath) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v; want errSocketPath saying %q", err, c.want)
			}
			after, err := os.Lstat(path)
			if err != nil || !os.SameFile(before, after) {
				t.Fatalf("what was at %s changed: %v", path, err)
			}
		})
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "root only" {
		t.Fatalf("the symlink's target changed: %q %v", b, err)
	}
}
