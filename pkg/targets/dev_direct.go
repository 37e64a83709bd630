package targets

import (
	"fmt"
	"log/slog"
	"math/bits"
	"os"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A block device is read and written with O_DIRECT, past the page cache,
// as dm's targets send their bios to the device: each request is the
// device's answer. Through the page cache (gdm's way before, and still
// with OpenOptions.BlockPageCache), a write the device fails succeeded and
// failed only the next flush, a read after a write the device dropped
// found the written data in the cache, and a slow device answered cached
// reads at once; and a served device's data was cached twice on a host
// that also attaches it, once in gdm's cache of the backing device and
// once in the client's. The oracle's stacked cases showed all three.
//
// O_DIRECT takes only I/O whose offset and length are whole logical
// blocks of the device and whose memory is aligned (the device's DMA
// alignment; gdm aligns to 4 KiB, which satisfies every queue):
//
//   - memory that is not aligned (an NBD write's payload sits wherever
//     the request landed in the connection's read buffer) goes through a
//     recycled aligned buffer, a copy of at most 1 MiB at a time;
//   - a range that is not whole blocks of a 512-byte device (the export
//     is byte-granular there) is read whole blocks at a time, and a
//     partial block written by reading, patching and writing it back
//     (dev_subsector.go): gdm keeps no page cache of a direct device,
//     which an AIO write would not drop;
//   - a large read is not spliced (that is the page cache's way) but read
//     into memory and written to the socket: one copy per byte.
//
// A device that refuses O_DIRECT (the open fails) is served through the
// page cache as before.

// directAlign is the memory alignment of direct I/O buffers.
const directAlign = 4096

// directChunk bounds one bounce through an aligned buffer.
const directChunk = 1 << 20

// openDirect opens a second descriptor of the block device or file d.fd
// is, with O_DIRECT (through /proc/self/fd, so it is the very one), and
// keeps it; one that refuses it keeps none, and is served through the
// page cache, which the log says (`gdm deps --json` shows it too).
func (d *Dev) openDirect(flag int) {
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(d.fd), flag|unix.O_DIRECT|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		slog.Warn("O_DIRECT refused: served through the page cache", "device", d.path, "err", err)
		return
	}
	d.direct = os.NewFile(uintptr(fd), d.path)
	d.directFD = fd
}

// directBlock is the unit of I/O on the direct descriptor: a block
// device's logical block size, a file's O_DIRECT offset alignment.
func (d *Dev) directBlock() int64 { return max(d.dioBlock, d.LogicalBlockSize()) }

// directOK says whether [off, off+n) may go to the direct descriptor:
// there is one, the range is whole blocks of it, and it ends by the last
// whole block (a file's size need not be whole blocks).
func (d *Dev) directOK(off, n int64) bool {
	bs := d.directBlock()
	return d.direct != nil && off%bs == 0 && n%bs == 0 && off+n <= d.size-d.size%bs
}

// directIO reads or writes p at off through the direct descriptor,
// bouncing p through an aligned buffer when p itself is not aligned.
func (d *Dev) directIO(write bool, what string, p []byte, off int64) error {
	io := unix.Pread
	if write {
		io = unix.Pwrite
	}
	if len(p) == 0 || aligned(p) {
		return d.fullOn(d.directFD, io, what, p, off)
	}
	ab := getAlignedBuf(min(len(p), directChunk))
	defer putAlignedBuf(ab)
	for len(p) > 0 {
		n := min(len(p), len(ab.b))
		b := ab.b[:n]
		if write {
			copy(b, p[:n])
		}
		if err := d.fullOn(d.directFD, io, what, b, off); err != nil {
			return err
		}
		if !write {
			copy(p[:n], b)
		}
		p = p[n:]
		off += int64(n)
	}
	return nil
}

// aligned says whether p (not empty) starts on a directAlign boundary.
func aligned(p []byte) bool { return uintptr(unsafe.Pointer(&p[0]))%directAlign == 0 }

// alignedBuf is a directAlign-aligned buffer of a power-of-two size.
type alignedBuf struct{ b []byte }

// alignedPools recycle alignedBufs by size, 4 KiB (class 0) to
// directChunk.
var alignedPools [9]sync.Pool

// getAlignedBuf is an aligned buffer of at least n bytes (n at most
// directChunk), recycled or new.
func getAlignedBuf(n int) *alignedBuf {
	c := max(bits.Len(uint(n-1)), 12) - 12
	if v := alignedPools[c].Get(); v != nil {
		return v.(*alignedBuf)
	}
	size := 1 << (c + 12)
	raw := make([]byte, size+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(&raw[0]))%directAlign)) % directAlign
	return &alignedBuf{b: raw[skip : skip+size : skip+size]}
}

// putAlignedBuf gives b back for reuse.
func putAlignedBuf(b *alignedBuf) {
	alignedPools[bits.Len(uint(len(b.b)-1))-12].Put(b)
}

// DirectIO says whether the device's whole-block I/O bypasses the page
// cache (see above).
func (d *Dev) DirectIO() bool { return d.direct != nil }

// closeDirect closes the direct descriptor, if any.
func (d *Dev) closeDirect() error {
	if d.direct == nil {
		return nil
	}
	if err := d.direct.Close(); err != nil {
		return fmt.Errorf("targets: close %s (direct): %w", d.path, err)
	}
	return nil
}
