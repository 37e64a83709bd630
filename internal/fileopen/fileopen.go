// Package fileopen opens a path that must be a regular file or a block
// device, and nothing else, for I/O: the backing devices of tables
// (pkg/targets) and the logs and devices of a log-writes replay
// (internal/logwrites) are paths that someone else wrote, and opening the
// wrong kind of file does harm before any read. A FIFO's open(2) blocks
// until a peer opens its other end (a daemon or a replay hung for good);
// a tty's open makes it the process's controlling terminal; a directory
// or a socket is no disk.
//
// Open stats the path and refuses other types before opening it, opens it
// with O_NONBLOCK (so a FIFO swapped in after the stat cannot block the
// open) and O_NOCTTY, and checks that the descriptor is the very file the
// stat saw before it makes it blocking again.
package fileopen

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Hooks let tests stand in for the system where a race or a hang would
// happen. A nil *Hooks is the system.
type Hooks struct {
	Open      func(path string, flag int, mode uint32) (int, error) // replaces unix.Open
	AfterStat func()                                                // between the stat and the open
}

// WrongTypeError is a path that is neither a regular file nor a block
// device. Replaced is set when the stat saw a fitting file and the
// descriptor is not one: the path was replaced while being opened.
type WrongTypeError struct {
	Path     string
	What     string // "a FIFO", "a directory", ...
	Replaced bool
}

func (e *WrongTypeError) Error() string {
	if e.Replaced {
		return fmt.Sprintf("%s is %s (it was replaced while being opened)", e.Path, e.What)
	}
	return fmt.Sprintf("%s is %s", e.Path, e.What)
}

// ReplacedError is a descriptor of the right type that is another file
// than the one the stat saw: the path was swapped between the two.
type ReplacedError struct {
	Path       string
	Was, Found unix.Stat_t
}

func (e *ReplacedError) Error() string {
	return fmt.Sprintf("%s was replaced while being opened", e.Path)
}

// Open opens path with flag (O_RDONLY, O_RDWR, ...) if it is a regular
// file or a block device, and returns the descriptor, blocking, with its
// fstat. Errors are a *WrongTypeError, a *ReplacedError, or an
// *os.PathError from the system call that failed.
func Open(path string, flag int, h *Hooks) (int, unix.Stat_t, error) {
	var before, after unix.Stat_t
	if err := retryEINTR(func() error { return unix.Stat(path, &before) }); err != nil {
		return -1, after, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if what := Unfit(&before); what != "" {
		return -1, after, &WrongTypeError{Path: path, What: what}
	}
	open := unix.Open
	if h != nil && h.AfterStat != nil {
		h.AfterStat()
	}
	if h != nil && h.Open != nil {
		open = h.Open
	}
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = open(path, flag|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		return err
	})
	if err != nil {
		return -1, after, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := check(path, fd, &before, &after); err != nil {
		unix.Close(fd)
		return -1, after, err
	}
	return fd, after, nil
}

// check fstats fd into after, confirms it is the file before described,
// and makes it blocking.
func check(path string, fd int, before, after *unix.Stat_t) error {
	if err := unix.Fstat(fd, after); err != nil {
		return &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if what := Unfit(after); what != "" {
		return &WrongTypeError{Path: path, What: what, Replaced: true}
	}
	if !sameFile(before, after) {
		return &ReplacedError{Path: path, Was: *before, Found: *after}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		return &os.PathError{Op: "clear O_NONBLOCK", Path: path, Err: err}
	}
	return nil
}

// sameFile compares what identifies a file across two stats: a regular
// file by filesystem and inode, a block device by its number.
func sameFile(a, b *unix.Stat_t) bool {
	if a.Mode&unix.S_IFMT != b.Mode&unix.S_IFMT {
		return false
	}
	if a.Mode&unix.S_IFMT == unix.S_IFBLK {
		return a.Rdev == b.Rdev
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// Unfit names what st is when it is neither a regular file nor a block
// device ("a FIFO", "a directory", ...), and is "" when it is one.
func Unfit(st *unix.Stat_t) string {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFBLK:
		return ""
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symlink"
	}
	return fmt.Sprintf("of unknown type %#o", st.Mode&unix.S_IFMT)
}

func retryEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}
