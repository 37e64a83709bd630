package logwrites

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FileDevice is a file or block device a log is replayed onto.
type FileDevice struct {
	*os.File
	block  bool
	zeroed bool // discard is not supported: write zeros instead
}

var _ Device = (*FileDevice)(nil)

// OpenDevice opens path, a file or block device, for writing; it must
// exist (replay-log does not create it either: a missing device is more
// likely a typo than a wish).
func OpenDevice(path string) (*FileDevice, error) {
	f, err := openFileOrBlock(path, unix.O_WRONLY)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &FileDevice{File: f, block: st.Mode()&os.ModeDevice != 0}, nil
}

// Discard makes [off, off+n) read as zeros, so that a replay gives the
// same bytes every time: a punched hole in a file, BLKZEROOUT on a block
// device (BLKDISCARD may leave old data), and zeros written by hand where
// neither works (up to a file's end, as a hole would leave it).
func (d *FileDevice) Discard(off, n int64) error {
	if !d.zeroed {
		var err error
		if d.block {
			r := [2]uint64{uint64(off), uint64(n)}
			_, _, errno := unix.Syscall(unix.SYS_IOCTL, d.Fd(), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r)))
			if errno != 0 {
				err = errno
			}
		} else {
			err = unix.Fallocate(int(d.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		}
		if err == nil {
			return nil
		}
		d.zeroed = true
	}
	if !d.block {
		// As a punched hole keeps the size: past the file's end there is
		// nothing to zero, and writing zeros there would grow the file by
		// as much as the log says (2^62 bytes from a hostile one).
		st, err := d.Stat()
		if err != nil {
			return fmt.Errorf("logwrites: zeroing a discarded range: %w", err)
		}
		n = min(n, max(st.Size()-off, 0))
	}
	zeros := make([]byte, min(n, 1<<20))
	for n > 0 {
		m := min(n, int64(len(zeros)))
		if _, err := d.WriteAt(zeros[:m], off); err != nil {
			return fmt.Errorf("logwrites: zeroing a discarded range: %w", err)
		}
		off += m
		n -= m
	}
	return nil
}
