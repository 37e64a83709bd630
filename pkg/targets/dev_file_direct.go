package targets

import (
	"log/slog"

	"golang.org/x/sys/unix"
)

// Regular files with O_DIRECT (gdm serve --file-direct; qemu's
// cache=none): a file on a fast disk is then served as a block device
// is (dev_direct.go, dev_aio.go). Whole blocks go to the disk through
// Linux AIO, many in flight at once, where the page cache path blocks a
// goroutine in pread per read that misses (see Limits in the README); a
// write the disk fails is that write's error, not the next flush's; and
// the file's data is not cached in the host's memory besides the
// client's own cache. What is lost is the cache itself: repeated reads
// go to the disk each time, so it is a choice, off by default, as loop
// devices and qemu leave it.
//
// The unit of direct I/O on a file is its filesystem's (statx's
// dio_offset_align: the disk's logical block size on ext4 and xfs), not
// the table's 512-byte sectors, which stay as they are. A range that is
// not whole units is read a unit at a time and written by a
// read-modify-write of its unit (dev_subsector.go); the file's last
// unit, if its end cuts it short, goes through the page cache.

// fallbackDIOBlock is the O_DIRECT unit assumed where statx does not say
// (kernels before 6.1): a page, which every filesystem's alignment
// divides.
const fallbackDIOBlock = 4096

// openFileDirect opens the file's O_DIRECT descriptor (openDirect) and
// learns its unit; a file whose filesystem has no O_DIRECT, or wants
// memory aligned past the aligned buffers', keeps none, and the log says
// so.
func (d *Dev) openFileDirect(flag int) {
	var st unix.Statx_t
	err := unix.Statx(d.fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &st)
	d.dioBlock = fallbackDIOBlock
	if err == nil && st.Mask&unix.STATX_DIOALIGN != 0 {
		d.dioBlock = int64(st.Dio_offset_align)
		if st.Dio_offset_align == 0 || st.Dio_mem_align > directAlign || d.dioBlock&(d.dioBlock-1) != 0 || d.dioBlock > directChunk {
			slog.Warn("O_DIRECT not offered: served through the page cache", "device", d.path,
				"dio_offset_align", st.Dio_offset_align, "dio_mem_align", st.Dio_mem_align)
			d.dioBlock = 0
			return
		}
	}
	d.openDirect(flag)
	if d.direct == nil {
		d.dioBlock = 0
	}
}
