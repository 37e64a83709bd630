package targets

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Extents reports holes and data in [off, off+length) with SEEK_DATA and
// SEEK_HOLE. The lseeks move the descriptor's file offset, which no I/O here
// uses (all I/O is positional), so concurrent callers are harmless. Devices
// without SEEK_DATA (block devices, some filesystems) are all data.
func (d *Dev) Extents(off, length int64, emit func(Extent) bool) error {
	if d.remote != nil {
		return d.remoteExtents(off, length, emit)
	}
	end := off + length
	if d.blockDev || d.noSeekData.Load() {
		emit(Extent{Length: length})
		return nil
	}
	for pos := off; pos < end; {
		data, err := unix.Seek(d.fd, pos, unix.SEEK_DATA)
		if err == unix.ENXIO { // no data after pos: the rest is a hole
			data = end
		} else if err != nil {
			if unsupported(err) {
				d.noSeekData.Store(true)
				emit(Extent{Length: end - pos})
				return nil
			}
			return fmt.Errorf("targets: seek data %s at %d: %w", d.path, pos, err)
		}
		if data > pos {
			n := min(data, end) - pos
			if !emit(Extent{Length: n, Flags: ExtentHole | ExtentZero}) {
				return nil
			}
			pos += n
			if pos >= end {
				return nil
			}
		}
		hole, err := unix.Seek(d.fd, pos, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("targets: seek hole %s at %d: %w", d.path, pos, err)
		}
		if hole <= pos { // raced with a write filling the hole; call it data
			hole = end
		}
		n := min(hole, end) - pos
		if !emit(Extent{Length: n}) {
			return nil
		}
		pos += n
	}
	return nil
}
