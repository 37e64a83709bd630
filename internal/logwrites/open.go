package logwrites

import (
	"errors"
	"fmt"
	"os"

	"github.com/gdm-project/gdm/internal/fileopen"
	"golang.org/x/sys/unix"
)

// OpenLog opens the log at path for reading: a file or a block device.
func OpenLog(path string) (*os.File, error) { return openFileOrBlock(path, unix.O_RDONLY) }

// openFileOrBlock opens path with flag if it is a regular file or a block
// device and nothing else (internal/fileopen says why: a FIFO named by
// mistake hung a replay forever). The descriptor is blocking, as I/O on
// it expects.
func openFileOrBlock(path string, flag int) (*os.File, error) {
	fd, _, err := fileopen.Open(path, flag, nil)
	var wrong *fileopen.WrongTypeError
	var replaced *fileopen.ReplacedError
	switch {
	case errors.As(err, &wrong):
		return nil, fmt.Errorf("%s: %w (%s)", path, errNotFileOrBlock, wrong.What)
	case errors.As(err, &replaced):
		return nil, fmt.Errorf("%s: %w (it was replaced while being opened)", path, errNotFileOrBlock)
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

var errNotFileOrBlock = errors.New("not a file or block device")
