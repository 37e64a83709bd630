package logwrites

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenLog opens the log at path for reading: a file or a block device.
func OpenLog(path string) (*os.File, error) { return openFileOrBlock(path, unix.O_RDONLY) }

// openFileOrBlock opens path with flag without waiting for anything and
// refuses what is neither a regular file nor a block device: a plain
// open(2) of a FIFO blocks until a peer opens its other end, so a FIFO
// named by mistake hung a replay forever (and a directory or a character
// device is no log and no device either). The type is checked before the
// open, for a clear error (open(2) of a FIFO without a reader says
// ENXIO), and again on what was opened, in case the path changed between.
// The descriptor is returned blocking, as I/O on it expects.
func openFileOrBlock(path string, flag int) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if !fileOrBlock(st) {
		return nil, fmt.Errorf("%s: %w", path, errNotFileOrBlock)
	}
	fd, err := unix.Open(path, flag|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := unix.Fstat(fd, &st); err != nil || !fileOrBlock(st) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", path, errNotFileOrBlock)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

var errNotFileOrBlock = errors.New("not a file or block device")

func fileOrBlock(st unix.Stat_t) bool {
	t := st.Mode & unix.S_IFMT
	return t == unix.S_IFREG || t == unix.S_IFBLK
}
