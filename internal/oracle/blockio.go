package oracle

import (
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Result is what a user sees of one operation: ok or an errno, the bytes
// moved, and a read's data.
type Result struct {
	Err  string // "" or the errno's name (EIO, EINVAL, ...)
	N    int
	Data []byte
	// Elapsed is how long the op took, when the runner timed it.
	Elapsed time.Duration
}

func (r Result) String() string {
	if r.Err != "" {
		return r.Err
	}
	return fmt.Sprintf("ok n=%d", r.N)
}

// Device is an open block device, driven the way a user program drives it:
// O_DIRECT reads and writes, RWF_DSYNC for FUA, BLKDISCARD, BLKZEROOUT and
// fdatasync, so that the page cache hides nothing of either side.
type Device struct {
	Path string
	fd   int
	buf  []byte // 4 KiB aligned, as O_DIRECT wants
}

// maxIO is the largest request a script makes.
const maxIO = 4 << 20

// OpenDevice opens path for I/O; direct is O_DIRECT (unit tests on tmpfs
// files go without it).
func OpenDevice(path string, direct bool) (*Device, error) {
	flag := unix.O_RDWR | unix.O_CLOEXEC
	if direct {
		flag |= unix.O_DIRECT
	}
	fd, err := unix.Open(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	raw := make([]byte, maxIO+4096)
	skip := int((4096 - uintptr(unsafe.Pointer(&raw[0]))%4096) % 4096)
	return &Device{Path: path, fd: fd, buf: raw[skip : skip+maxIO]}, nil
}

// Close closes the device.
func (d *Device) Close() error { return unix.Close(d.fd) }

// Size is the device's size in bytes.
func (d *Device) Size() (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		return st.Size, nil
	}
	n, err := unix.IoctlGetUint64(d.fd, unix.BLKGETSIZE64)
	return int64(n), err
}

// LogicalBlockSize is the device's logical block size (BLKSSZGET: what
// /sys/block/X/queue/logical_block_size says, and the least I/O the block
// layer lets through to it), or 512 for a regular file (unit tests).
func (d *Device) LogicalBlockSize() (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		return 512, nil
	}
	n, err := unix.IoctlGetInt(d.fd, unix.BLKSSZGET)
	return int64(n), err
}

// Do runs one I/O operation. A read's Data is a copy.
func (d *Device) Do(op Op) Result {
	var n int
	var err error
	switch op.Kind {
	case Read:
		p := d.buf[:op.Len]
		n, err = unix.Pread(d.fd, p, op.Off)
		if err == nil {
			return Result{N: n, Data: append([]byte(nil), p[:n]...)}
		}
	case Write, WriteFUA:
		p := d.buf[:op.Len]
		fill(p, op.Seed, 0)
		flags := 0
		if op.Kind == WriteFUA {
			flags = unix.RWF_DSYNC
		}
		n, err = unix.Pwritev2(d.fd, [][]byte{p}, op.Off, flags)
	case Discard, WriteZeroes:
		req := uint(unix.BLKDISCARD)
		if op.Kind == WriteZeroes {
			req = unix.BLKZEROOUT
		}
		err = d.rangeIoctl(req, op.Off, op.Len)
	case Flush:
		err = unix.Fdatasync(d.fd)
	default:
		return Result{Err: "unknown op " + string(op.Kind)}
	}
	return Result{Err: errnoName(err), N: n}
}

// rangeIoctl is BLKDISCARD or BLKZEROOUT of [off, off+n), or on a regular
// file (unit tests) a punched hole for either.
func (d *Device) rangeIoctl(req uint, off, n int64) error {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		return unix.Fallocate(d.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n) // reads zeros after
	}
	r := [2]uint64{uint64(off), uint64(n)}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), uintptr(req), uintptr(unsafe.Pointer(&r)))
	if e != 0 {
		return e
	}
	return nil
}

// errnoName is "" for nil, else the errno's name: what a program sees.
func errnoName(err error) string {
	if err == nil {
		return ""
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		if name := unix.ErrnoName(e); name != "" {
			return name
		}
	}
	return err.Error()
}

// Fill gives a backing device its initial contents over its first size
// bytes.
func (d *Device) Fill(init Init, size int64) error {
	if !init.Pattern {
		if err := d.rangeIoctl(unix.BLKZEROOUT, 0, size); err != nil {
			return fmt.Errorf("zero %s: %w", d.Path, err)
		}
		return nil
	}
	for off := int64(0); off < size; off += maxIO {
		p := d.buf[:min(maxIO, size-off)]
		fill(p, init.Seed, off)
		if _, err := unix.Pwrite(d.fd, p, off); err != nil {
			return fmt.Errorf("fill %s at %d: %w", d.Path, off, err)
		}
	}
	return unix.Fdatasync(d.fd)
}
