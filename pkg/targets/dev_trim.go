package targets

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

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

// The fallocate modes that discard or zero a range in place.
const (
	punchHole = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
	zeroRange = unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE
)

// tryFallocate runs fallocate with mode unless the device refused that
// mode before (refused), and says whether it did the range. A refusal
// (unsupported) is remembered in refused and is no error: the caller
// falls back, or does nothing.
func (d *Dev) tryFallocate(mode uint32, refused *atomic.Bool, off, length int64) (done bool, err error) {
	if refused.Load() {
		return false, nil
	}
	switch err := d.fallocate(mode, off, length); {
	case err == nil:
		return true, nil
	case unsupported(err):
		refused.Store(true)
		return false, nil
	default:
		return false, err
	}
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
	if _, err := d.tryFallocate(punchHole, &d.noPunch, off, length); err != nil {
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
	modes := []struct {
		mode    uint32
		refused *atomic.Bool
	}{{punchHole, &d.noPunch}, {zeroRange, &d.noZeroRange}}
	if flags.NoHole {
		modes = modes[1:]
	}
	for _, m := range modes {
		done, err := d.tryFallocate(m.mode, m.refused, off, length)
		if err != nil {
			return fmt.Errorf("targets: zero %s at %d: %w", d.path, off, err)
		}
		if done {
			return nil
		}
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
