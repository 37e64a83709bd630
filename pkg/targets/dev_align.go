package targets

import "golang.org/x/sys/unix"

// A block device's fallocate takes only ranges aligned to its logical
// block size, and answers EINVAL to any other: the same answer as a kernel
// without the mode gives, which Trim and Zero take as "never supported"
// and remember. The export is byte-granular, so an NBD client may send any
// range: before this, one unaligned TRIM or WRITE_ZEROES made every later
// trim of the device do nothing and every fast zero fail. So an unaligned
// range never reaches fallocate: a trim (advisory) drops its partial
// blocks, a zero writes them by hand.

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
