package targets

import (
	"errors"
	"fmt"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrDeviceBusy is a block device that something else holds exclusively:
// a mounted filesystem, the kernel's device-mapper or md, swap, or another
// program (another gdm among them) that opened it with O_EXCL.
var ErrDeviceBusy = errors.New("block device in use")

// A block device in a table is claimed, as the kernel's dm claims the
// devices of its tables: gdm holds one extra descriptor opened with
// O_EXCL on it for as long as any table uses it. While gdm holds it, a
// mount, mkfs, swapon, dmsetup or md of the same device is refused with
// EBUSY, and a device that one of those already holds is refused to gdm,
// so that two writers that each think they own a disk never meet on it.
//
// O_EXCL claims belong to the open file, not the process, so a second
// exclusive open by gdm itself would fail too: that is why the claim is
// one per device for the whole process, counted, and shared by every
// table (a reload's new table opens its devices while the old one still
// holds them). The I/O descriptor itself stays a plain open, but a
// fallocate (discard, zero range) must go through the claim: the kernel
// refuses it with EBUSY on any other descriptor of a claimed device, as
// it drops the page cache of the range, which only the holder may.
//
// The limit of this: a partition and its whole disk are two claims, which
// the kernel refuses to two holders, so one gdm cannot map both at once
// (dm can, as it claims them all under one holder).
var blockClaims = struct {
	sync.Mutex
	held map[uint64]*blockClaim // by device number
}{held: map[uint64]*blockClaim{}}

// blockClaim is the exclusive hold on one block device.
type blockClaim struct {
	rdev  uint64
	refs  int           // under blockClaims' lock
	ready chan struct{} // closed once fd and err are set
	fd    int
	err   error
}

// claimBlock takes a counted share of the exclusive claim on the block
// device that fd (opened from path) is, making the claim if nobody in
// this process holds it yet. The claim is opened through /proc/self/fd, so
// it names the very device fd is, whatever the path names by now. The
// lock is not held across that open: a second caller for the same device
// waits for the first's result instead.
func claimBlock(path string, fd int, rdev uint64) (*blockClaim, error) {
	blockClaims.Lock()
	c := blockClaims.held[rdev]
	if c != nil {
		c.refs++
		blockClaims.Unlock()
		<-c.ready
		if c.err != nil {
			c.release()
			return nil, c.err
		}
		return c, nil
	}
	c = &blockClaim{rdev: rdev, refs: 1, ready: make(chan struct{}), fd: -1}
	blockClaims.held[rdev] = c
	blockClaims.Unlock()

	c.fd, c.err = openClaim(path, fd, rdev)
	close(c.ready)
	if c.err != nil {
		c.release()
		return nil, c.err
	}
	return c, nil
}

// openClaim opens the device fd is once more, exclusively: for writing,
// so that fallocates can go through it, unless the device is read-only.
func openClaim(path string, fd int, rdev uint64) (int, error) {
	var excl int
	open := func(mode int) error {
		return retryEINTR(func() (err error) {
			excl, err = unix.Open("/proc/self/fd/"+strconv.Itoa(fd), mode|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
			return err
		})
	}
	err := open(unix.O_RDWR)
	if errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		err = open(unix.O_RDONLY)
	}
	if errors.Is(err, unix.EBUSY) {
		return -1, fmt.Errorf("targets: %s (block device %d:%d) is in use: mounted, or held by dm, md, swap or another program: %w",
			path, unix.Major(rdev), unix.Minor(rdev), ErrDeviceBusy)
	}
	if err != nil {
		return -1, fmt.Errorf("targets: claim %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(excl, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != rdev {
		unix.Close(excl)
		return -1, fmt.Errorf("targets: claim %s: the claim is not the device opened: %w", path, ErrBadDevice)
	}
	return excl, nil
}

// release gives back one share; the last closes the claim. A failed
// claim's entry goes as soon as every waiter on it has seen the failure.
func (c *blockClaim) release() {
	blockClaims.Lock()
	c.refs--
	last := c.refs == 0
	if last && blockClaims.held[c.rdev] == c {
		delete(blockClaims.held, c.rdev)
	}
	blockClaims.Unlock()
	if last && c.fd >= 0 {
		unix.Close(c.fd)
	}
}
