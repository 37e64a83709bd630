package targets

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Discarding and zeroing a Dev's ranges: fallocate where the file or
// device takes it, on the descriptor that may drop the range's cache,
// and the fallbacks where it does not.

func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL)
}

// claimFD is the descriptor that may discard or zero the device: a block
// device's claim, the only one the kernel lets drop its page cache over a
// range (blockclaim.go), else the device's own.
func (d *Dev) claimFD() int {
	if d.claim != nil {
		return d.claim.fd
	}
	return d.fd
}

// fallocate runs on claimFD.
func (d *Dev) fallocate(mode uint32, off, length int64) error {
	fd := d.claimFD()
	for {
		err := unix.Fallocate(fd, mode, off, length)
		if err != unix.EINTR {
			return err
		}
	}
}

// Trim discards a range: a file's by punching a hole, a block device's by
// a discard (dev_discard.go); where the device cannot, trim is advisory
// and does nothing. On a block device only the whole logical blocks of
// the range are discarded (dev_align.go). A block device that takes no
// discards (dev_caps.go) is left alone, as dm never sends it one
// (log-writes, the one target that takes discards over such a device,
// logs them only).
func (d *Dev) Trim(off, length int64) error {
	if d.remote != nil {
		return d.remoteErr("trim", off, d.remote.Trim(context.Background(), off, length))
	}
	if err := d.blockMisaligned("trim", off, length); err != nil {
		return err
	}
	start, end := d.alignedPart(off, length)
	if d.noDiscard || end <= start {
		return nil
	}
	off, length = start, end-start
	if d.blockDev {
		return d.blkDiscard(off, length)
	}
	if d.noPunch.Load() {
		return nil
	}
	err := d.fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	if err != nil && unsupported(err) {
		d.noPunch.Store(true)
		return nil
	}
	if err != nil {
		return fmt.Errorf("targets: trim %s at %d: %w", d.path, off, err)
	}
	return nil
}

// Zero makes [off, off+length) read as zeros: a punched hole unless NoHole,
// else an allocated zero range, else zeros written by hand (unless Fast).
func (d *Dev) Zero(off, length int64, flags ZeroFlags) error {
	if d.remote != nil {
		return d.remoteZero(off, length, flags)
	}
	if err := d.blockMisaligned("zero", off, length); err != nil {
		return err
	}
	if start, end := d.alignedPart(off, length); start != off || end != off+length {
		return d.zeroEdges(off, length, flags)
	}
	return d.zeroAligned(off, length, flags)
}

// zeroAligned is Zero for a range fallocate takes (see dev_align.go).
func (d *Dev) zeroAligned(off, length int64, flags ZeroFlags) error {
	if !flags.NoHole && !d.noPunch.Load() {
		err := d.fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
		if err == nil {
			return nil
		}
		if !unsupported(err) {
			return fmt.Errorf("targets: zero %s at %d: %w", d.path, off, err)
		}
		d.noPunch.Store(true)
	}
	if !d.noZeroRange.Load() {
		err := d.fallocate(unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, length)
		if err == nil {
			return nil
		}
		if !unsupported(err) {
			return fmt.Errorf("targets: zero %s at %d: %w", d.path, off, err)
		}
		d.noZeroRange.Store(true)
	}
	if flags.Fast {
		return ErrNotSupported
	}
	return d.writeZeros(off, length)
}

// zeroBuf is a shared source of zeros; nobody writes to it.
var zeroBuf = make([]byte, 1<<20)

func (d *Dev) writeZeros(off, length int64) error {
	for length > 0 {
		n := min(length, int64(len(zeroBuf)))
		if err := d.WriteAt(zeroBuf[:n], off); err != nil {
			return err
		}
		off += n
		length -= n
	}
	return nil
}
