package targets

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A trim of a block device is a discard (BLKDISCARD), as dm sends the
// discard bio on to the device. It used to be a punched hole, which the
// kernel turns into a write-zeroes that must not fall back to writing
// (blkdev_fallocate): a device with discard but no write-zeroes (many
// SATA SSDs, a virtio disk without the feature) refused every such
// trim, and gdm then took the device for one without discard and
// dropped them all, where dm discards. On a device with both, the
// punched hole was a write-zeroes where dm sends a discard: zeroes that
// a device may write out in full. BLKDISCARD drops the page cache over
// the range as the punched hole did, and like it must go through the
// exclusive claim's descriptor (blockclaim.go).

// blkDiscard discards the whole logical blocks [off, off+length) of a
// block device. A device that refuses discards after all (sysfs said it
// took them) is remembered and left alone: a discard is advisory.
func (d *Dev) blkDiscard(off, length int64) error {
	if d.noBlkDiscard.Load() {
		return nil
	}
	fd := d.claimFD()
	r := [2]uint64{uint64(off), uint64(length)}
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKDISCARD, uintptr(unsafe.Pointer(&r)))
		switch {
		case errno == 0:
			return nil
		case errno == unix.EINTR:
			continue
		case errno == unix.EOPNOTSUPP:
			d.noBlkDiscard.Store(true)
			return nil
		}
		return fmt.Errorf("targets: discard %s at %d+%d: %w", d.path, off, length, errno)
	}
}
