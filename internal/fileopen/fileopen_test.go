package fileopen

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Open refuses every type but a regular file or block device, by name,
// without opening it: a FIFO with no writer would otherwise block the
// open for good, so the test bounds each case.
func TestOpenRefusesWhatIsNoDisk(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, what string }{
		{fifo, "a FIFO"}, {link, "a FIFO"}, {dir, "a directory"}, {"/dev/null", "a character device"},
	} {
		done := make(chan error, 1)
		go func() {
			fd, _, err := Open(c.path, unix.O_RDWR, nil)
			if err == nil {
				unix.Close(fd)
			}
			done <- err
		}()
		select {
		case err := <-done:
			var wrong *WrongTypeError
			if !errors.As(err, &wrong) || wrong.What != c.what || wrong.Replaced {
				t.Errorf("%s: %v; want a WrongTypeError saying %s", c.path, err, c.what)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the open blocked", c.path)
		}
	}
}

// A path replaced between the stat and the open is refused: by a FIFO (of
// the wrong type, and opened without blocking) or by another file.
func TestOpenRefusesAPathReplacedMeanwhile(t *testing.T) {
	dir := t.TempDir()
	path, other := filepath.Join(dir, "disk"), filepath.Join(dir, "other")
	for _, p := range []string{path, other} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	swapFIFO := &Hooks{AfterStat: func() {
		os.Remove(path)
		if err := unix.Mkfifo(path, 0o600); err != nil {
			t.Error(err)
		}
	}}
	_, _, err := Open(path, unix.O_RDONLY, swapFIFO)
	var wrong *WrongTypeError
	if !errors.As(err, &wrong) || !wrong.Replaced || wrong.What != "a FIFO" {
		t.Fatalf("swapped for a FIFO: %v; want a WrongTypeError, replaced", err)
	}

	os.Remove(path)
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	swapFile := &Hooks{AfterStat: func() {
		if err := os.Rename(other, path); err != nil {
			t.Error(err)
		}
	}}
	_, _, err = Open(path, unix.O_RDONLY, swapFile)
	var replaced *ReplacedError
	if !errors.As(err, &replaced) || replaced.Was.Ino == replaced.Found.Ino {
		t.Fatalf("swapped for another file: %v; want a ReplacedError", err)
	}
}

// A regular file opens, and its descriptor is blocking again, as positional
// I/O on it expects.
func TestOpenGivesABlockingDescriptor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(path, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, st, err := Open(path, unix.O_RDWR, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if st.Size != 4096 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Fatalf("stat %+v; want a regular file of 4096 bytes", st)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil || flags&unix.O_NONBLOCK != 0 {
		t.Fatalf("flags %#o, %v: still non-blocking", flags, err)
	}
}
