package targets

import (
	"sync"

	"golang.org/x/sys/unix"
)

// Sub-sector ranges on a direct block device. The export of a table over
// a 512-byte device is byte-granular, so a client may read or write a few
// bytes inside a sector; O_DIRECT takes only whole sectors. Those ranges
// went through the page cache descriptor, which the kernel keeps coherent
// with direct I/O only for synchronous calls: a direct pwrite drops the
// range's cached pages after the write, but an AIO write's completion
// does not (block/fops.c drops them only before submitting, and after a
// synchronous write). A sub-sector read whose readahead ran while an AIO
// write of a nearby range was in flight could then cache the old data,
// and every later sub-sector read of it returned that old data, a later
// sub-sector write even wrote it back around its own bytes. So gdm keeps
// no page cache of a direct device: a partial sector is read whole,
// directly, and a write to one is a read-modify-write of the whole
// sector, directly, under a lock per sector, so that two writes to
// different bytes of one sector (which do not overlap, so NBD orders
// neither) both land. Overlapping requests in flight at once have no
// order under NBD, so an RMW needs no lock against whole-sector I/O.

// sectorLocks serialises read-modify-writes of one sector; a sector's
// lock is one of these, by its number.
const sectorLocks = 64

// partialLocks are a Dev's sector locks, made on its first sub-sector
// write.
type partialLocks struct {
	once sync.Once
	mu   *[sectorLocks]sync.Mutex
}

// lockFor is the lock of the block starting at byte blk.
func (d *Dev) lockFor(blk int64) *sync.Mutex {
	d.partial.once.Do(func() { d.partial.mu = new([sectorLocks]sync.Mutex) })
	return &d.partial.mu[(blk/d.directBlock())%sectorLocks]
}

// directAnyRange reads or writes p at off on the direct descriptor when
// the range is not whole blocks: whole blocks as they are, a partial
// block at either end read whole (and, for a write, patched and written
// back whole).
func (d *Dev) directAnyRange(write bool, what string, p []byte, off int64) error {
	bs := d.directBlock()
	for len(p) > 0 {
		blk := off - off%bs
		if off == blk && int64(len(p)) >= bs {
			n := int64(len(p)) - int64(len(p))%bs
			if err := d.directIO(write, what, p[:n], off); err != nil {
				return err
			}
			p, off = p[n:], off+n
			continue
		}
		n := min(int64(len(p)), blk+bs-off)
		if err := d.partialBlock(write, what, p[:n], off, blk); err != nil {
			return err
		}
		p, off = p[n:], off+n
	}
	return nil
}

// partialBlock reads p from, or writes p into, the block that starts at
// byte blk and holds [off, off+len(p)).
//
// A file's last block may be cut short by its end, which O_DIRECT would
// read short and a whole-block write would move: that one goes through
// the page cache descriptor.
func (d *Dev) partialBlock(write bool, what string, p []byte, off, blk int64) error {
	bs := d.directBlock()
	if blk+bs > d.size {
		io := unix.Pread
		if write {
			io = unix.Pwrite
		}
		return d.fullOn(d.fd, io, what, p, off)
	}
	ab := getAlignedBuf(int(bs))
	defer putAlignedBuf(ab)
	b := ab.b[:bs]
	if write {
		mu := d.lockFor(blk)
		mu.Lock()
		defer mu.Unlock()
	}
	if err := d.fullOn(d.directFD, unix.Pread, what, b, blk); err != nil {
		return err
	}
	if !write {
		copy(p, b[off-blk:])
		return nil
	}
	copy(b[off-blk:], p)
	return d.fullOn(d.directFD, unix.Pwrite, what, b, blk)
}
