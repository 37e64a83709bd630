package targets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/gdm-project/gdm/pkg/nbdclient"
	"golang.org/x/sys/unix"
)

// Dev is one open backing device: a regular file or a block device. It does
// positional I/O straight on the file descriptor (pread/pwrite), so many
// goroutines may use it at once. Its owner (a DevSet) closes it only after
// every I/O on it has returned; that is the table refcount rule's job.
type Dev struct {
	path     string
	realPath string   // what the descriptor resolved to, from /proc/self/fd ("" if unknown)
	id       Identity // which file or device this is, for a later restart to compare
	file     *os.File
	fd       int
	size     int64
	blockDev bool
	// blockSize is a block device's logical block size: the alignment its
	// fallocate needs (dev_align.go); a remote export's (the unit of its
	// requests); 0 for a file (see LogicalBlockSize).
	blockSize int64
	readOnly  bool
	remote    *nbdclient.Client // an NBD export (remote_dev.go); file is nil then
	// remoteOptions are the export's URI options, canonical: another
	// spelling of the export in the same table must give the same.
	remoteOptions string
	claim         *blockClaim // a block device's exclusive hold (blockclaim.go)
	// direct is a block device's O_DIRECT descriptor, nil for none, and
	// directFD its number (dev_direct.go).
	direct   *os.File
	directFD int
	// dioBlock is a regular file's O_DIRECT offset alignment, from statx
	// (dev_file_direct.go); 0 for a block device, whose logical block
	// size it is.
	dioBlock int64
	// partial are the locks of sub-sector writes on the direct
	// descriptor (dev_subsector.go).
	partial partialLocks

	// Learned on first use: fallocate modes the device refuses, so later
	// requests go straight to the fallback.
	noPunch      atomic.Bool
	noZeroRange  atomic.Bool
	noSeekData   atomic.Bool
	noBlkDiscard atomic.Bool // BLKDISCARD refused (dev_discard.go)

	// noDiscard and noWriteZeroes: a block device that takes no discards
	// or no write-zeroes, as sysfs said at open (dev_caps.go).
	noDiscard, noWriteZeroes bool

	// syncs counts the fdatasyncs that succeeded: how a test sees that a
	// FUA write or a flush reached this device.
	syncs atomic.Uint64

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool
}

// openDev opens a backing device under opts: see openChecked for how it
// avoids opening anything but a regular file or block device, and
// OpenOptions for the bound, the allow-list and the identity check.
func openDev(path string, readOnly bool, opts *OpenOptions) (*Dev, error) {
	flag := unix.O_RDWR
	if readOnly {
		flag = unix.O_RDONLY
	}
	o, err := openBounded(path, flag, opts)
	if err != nil {
		return nil, err
	}
	d := &Dev{path: path, realPath: o.real, id: identityOf(&o.st), file: o.file, fd: int(o.file.Fd()), readOnly: readOnly, claim: o.claim}
	if err := d.check(opts); err != nil {
		o.close()
		return nil, err
	}
	if o.st.Mode&unix.S_IFMT == unix.S_IFREG {
		d.size = o.st.Size
		if opts.FileDirect {
			d.openFileDirect(flag)
		}
		return d, nil
	}
	d.blockDev = true
	n, err := unix.IoctlGetUint64(d.fd, unix.BLKGETSIZE64)
	if err != nil {
		o.close()
		return nil, fmt.Errorf("targets: BLKGETSIZE64 %s: %w", path, err)
	}
	d.size = int64(n)
	d.blockSize = logicalBlockSize(d.fd)
	d.learnBlockCaps(o.st.Rdev)
	if !opts.BlockPageCache {
		d.openDirect(flag)
	}
	return d, nil
}

// check applies the allow-list, then the expected identity.
func (d *Dev) check(opts *OpenOptions) error {
	if err := opts.checkAllowed(d.path, d.realPath); err != nil {
		return err
	}
	return opts.checkIdentity(d.path, d.id)
}

// Path is the path the device was opened by.
func (d *Dev) Path() string { return d.path }

// RealPath is the path the open descriptor resolved to, symlinks followed
// ("" if /proc could not say).
func (d *Dev) RealPath() string { return d.realPath }

// Identity is which file or block device was opened.
func (d *Dev) Identity() Identity { return d.id }

// Size is the device's size in bytes when it was opened.
func (d *Dev) Size() int64 { return d.size }

// Closed reports whether Close has run (for tests and leak checks).
func (d *Dev) Closed() bool { return d.closed.Load() }

// ReadAt fills p from off; a device that ends first is ErrShortIO.
func (d *Dev) ReadAt(p []byte, off int64) error {
	if d.remote != nil {
		return d.remoteErr("read", off, d.remote.ReadAt(context.Background(), p, off))
	}
	if err := d.blockMisaligned("read", off, int64(len(p))); err != nil {
		return err
	}
	return d.full(unix.Pread, "read", p, off)
}

// WriteAt writes all of p at off.
func (d *Dev) WriteAt(p []byte, off int64) error {
	if d.remote != nil {
		return d.remoteErr("write", off, d.remote.WriteAt(context.Background(), p, off, false))
	}
	if err := d.blockMisaligned("write", off, int64(len(p))); err != nil {
		return err
	}
	return d.full(unix.Pwrite, "write", p, off)
}

// full repeats a positional read or write until all of p is done, on the
// direct descriptor where there is one (dev_direct.go; a range that is
// not whole blocks: dev_subsector.go).
func (d *Dev) full(io func(fd int, p []byte, off int64) (int, error), what string, p []byte, off int64) error {
	switch {
	case d.directOK(off, int64(len(p))):
		return d.directIO(what == "write", what, p, off)
	case d.direct != nil:
		return d.directAnyRange(what == "write", what, p, off)
	}
	return d.fullOn(d.fd, io, what, p, off)
}

// fullOn is full on descriptor fd.
func (d *Dev) fullOn(fd int, io func(fd int, p []byte, off int64) (int, error), what string, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := io(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return d.localErr(what, off, err)
		}
		if n == 0 {
			return d.shortErr(what, off)
		}
		p = p[n:]
		off += int64(n)
	}
	return nil
}

// ioErr is a local read's or write's error at off; shortErr one that met
// the device's end. Both the blocking and the asynchronous path (dev_aio.go)
// say them so.
func (d *Dev) ioErr(what string, off int64, err error) error {
	return fmt.Errorf("targets: %s %s at %d: %w", what, d.path, off, err)
}

func (d *Dev) shortErr(what string, off int64) error {
	return fmt.Errorf("%w: %s %s at %d", ErrShortIO, what, d.path, off)
}

// localErr is a failed local read's or write's error: ioErr, but for a
// block device's ENOSPC, a write past its end (one that shrank under the
// table), which dm's bio fails with EIO there: shortErr. A file's ENOSPC
// is its filesystem's, and stays.
func (d *Dev) localErr(what string, off int64, err error) error {
	if errors.Is(err, unix.ENOSPC) && d.blockDev {
		return d.shortErr(what, off)
	}
	return d.ioErr(what, off, err)
}

// Sync makes every completed write durable (fdatasync).
func (d *Dev) Sync() error { return d.SyncContext(context.Background()) }

// SyncContext is Sync for a caller with a deadline of its own (a verb's
// --timeout): a remote device's FLUSH ends when ctx does. A local
// fdatasync cannot be interrupted and ignores ctx.
func (d *Dev) SyncContext(ctx context.Context) error {
	if d.readOnly {
		return nil
	}
	if d.remote != nil {
		return d.remoteSync(ctx)
	}
	for {
		err := unix.Fdatasync(d.fd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("targets: fdatasync %s: %w", d.path, err)
		}
		d.syncs.Add(1)
		return nil
	}
}

// Syncs is how many times Sync made the device's writes durable.
func (d *Dev) Syncs() uint64 { return d.syncs.Load() }

// Close closes the device once; later calls return the first result.
func (d *Dev) Close() error {
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		if d.remote != nil {
			d.closeErr = d.remote.Close()
			return
		}
		d.closeErr = d.closeDirect()
		if err := d.file.Close(); err != nil {
			d.closeErr = fmt.Errorf("targets: close %s: %w", d.path, err)
		}
		if d.claim != nil {
			d.claim.release()
		}
	})
	return d.closeErr
}
