package targets

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// A block device's fallocate takes only ranges aligned to its logical
// block size, and answers EINVAL to any other: the same answer as a kernel
// without the mode gives, which Trim and Zero take as "never supported"
// and remember. The export is byte-granular, so an NBD client may send any
// range: before this, one unaligned TRIM or WRITE_ZEROES made every later
// trim of the device do nothing and every fast zero fail. So an unaligned
// range never reaches fallocate: a trim (advisory) drops its partial
// blocks, a zero writes them by hand.

// A block device of blocks above 512 bytes (4 KiB sectors) takes no
// read, write, discard or write-zeroes that is not whole blocks: under dm
// the device fails such a bio, EIO, and the target that sent it counts
// the error (a striped leg shows D). gdm's descriptor goes through the
// page cache, which would serve it, so Dev refuses it itself
// (blockMisaligned). A table of such a device already refuses I/O that is
// not whole blocks of the table (pkg/table); what is left are the
// targets that split I/O below a block of their device: a striped target
// whose chunk is smaller than its legs' blocks (dm takes the table, and
// each piece then fails), a log-writes log of 512-byte entries on a 4 KiB
// log device. Sub-sector ranges on a 512-byte device stay as they are
// (below): the export is byte-granular there.

// blockMisaligned is the error for [off, off+n) on a block device of
// blocks above 512 bytes that is not whole blocks of it; nil otherwise.
func (d *Dev) blockMisaligned(what string, off, n int64) error {
	bs := d.blockSize
	if !d.blockDev || bs <= SectorSize || (off%bs == 0 && n%bs == 0) {
		return nil
	}
	return fmt.Errorf("targets: %s %s at %d+%d: not whole %d-byte blocks of the device: %w", what, d.path, off, n, bs, unix.EIO)
}

// logicalBlockSize is a block device's (BLKSSZGET), or 512 if it will not
// say.
func logicalBlockSize(fd int) int64 {
	n, err := unix.IoctlGetInt(fd, unix.BLKSSZGET)
	if err != nil || n < SectorSize || n&(n-1) != 0 {
		return SectorSize
	}
	return int64(n)
}

// LogicalBlockSize is the device's logical block size in bytes, as dm
// stacks a table's limits from its devices' (dm_set_device_limits): 512
// for a regular file, a block device's BLKSSZGET, and a remote export's
// advertised minimum block size if larger than 512 (such a server may
// refuse a request not aligned to it).
func (d *Dev) LogicalBlockSize() int64 { return max(d.blockSize, SectorSize) }

// alignedPart is the largest part of [off, off+length) made of whole
// logical blocks, as [start, end); end <= start when there is none. A
// regular file takes any range: all of it.
func (d *Dev) alignedPart(off, length int64) (start, end int64) {
	if !d.blockDev {
		return off, off + length
	}
	bs := max(d.blockSize, SectorSize)
	return (off + bs - 1) / bs * bs, (off + length) / bs * bs
}

// zeroEdges is Zero for a block device range that is not aligned: the
// aligned middle by zeroAligned, then the partial blocks at either end
// written by hand (at most two blocks; a fast zero too, as the middle's
// success says the device zeroes fast).
func (d *Dev) zeroEdges(off, length int64, flags ZeroFlags) error {
	start, end := d.alignedPart(off, length)
	if end <= start {
		if flags.Fast {
			return ErrNotSupported
		}
		return d.writeZeros(off, length)
	}
	if err := d.zeroAligned(start, end-start, flags); err != nil {
		return err
	}
	if err := d.writeZeros(off, start-off); err != nil {
		return err
	}
	return d.writeZeros(end, off+length-end)
}
