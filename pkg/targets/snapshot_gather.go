package targets

import (
	"cmp"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// Gathered I/O on the COW device. The runs of a request that go to the
// COW device are done after its others, sorted by their place there, and
// those that lie end to end on the device, though not in the request, are
// one preadv or pwritev into or out of their places in the request's
// buffer. Such stretches are common: a write allocates its new chunks one
// after another across all its runs (WriteAt), so a 1 MiB write over
// chunks that 4 KiB writes left mapped here and there puts all its new
// chunks in one stretch of the COW device, and a later read of that MiB
// costs one preadv for them plus one pread per old chunk, not one per run.
// Chunks that 4 KiB random writes left at random COW chunks stay one call
// each: there is no stretch to find. (Not a mapping of the device
// instead: see ReadAt.)

// maxGather bounds the buffers of one call, well under the kernel's
// IOV_MAX (1024): a 1 MiB request over 4 KiB chunks has at most 256.
const maxGather = 512

// cowIO is a run's part of the COW device: where it is there, and the
// request's bytes for it.
type cowIO struct {
	at int64
	p  []byte
}

// gathered reads (write false) or writes ios on d, with one call per
// stretch of them that lies end to end on d.
func gathered(d *Dev, ios []cowIO, write bool) error {
	if len(ios) == 1 { // the common request: one run, nothing to gather
		return vectored(d, [][]byte{ios[0].p}, ios[0].at, write)
	}
	slices.SortFunc(ios, func(a, b cowIO) int { return cmp.Compare(a.at, b.at) })
	bufs := make([][]byte, 0, min(len(ios), maxGather))
	for len(ios) > 0 {
		n, end := 1, ios[0].at+int64(len(ios[0].p))
		for n < len(ios) && n < maxGather && ios[n].at == end {
			end += int64(len(ios[n].p))
			n++
		}
		bufs = bufs[:0]
		for _, io := range ios[:n] {
			bufs = append(bufs, io.p)
		}
		if err := vectored(d, bufs, ios[0].at, write); err != nil {
			return err
		}
		ios = ios[n:]
	}
	return nil
}

// vectored reads or writes bufs one after another from off: a single
// buffer, or any on a remote device, with ReadAt or WriteAt; more with
// preadv or pwritev, repeated until every byte is done. On a block
// device read with O_DIRECT, the vector goes to its direct descriptor
// when every buffer is aligned and whole blocks, and one buffer at a time
// through ReadAt or WriteAt (which bounce it) otherwise: never through
// the page cache (dev_subsector.go says why).
func vectored(d *Dev, bufs [][]byte, off int64, write bool) error {
	fd := d.fd
	if d.direct != nil {
		fd = d.directFD
	}
	if len(bufs) == 1 || d.remote != nil || (d.direct != nil && !directVector(d, bufs, off)) {
		at := d.ReadAt
		if write {
			at = d.WriteAt
		}
		for _, b := range bufs {
			if err := at(b, off); err != nil {
				return err
			}
			off += int64(len(b))
		}
		return nil
	}
	what, io := "read", unix.Preadv
	if write {
		what, io = "write", unix.Pwritev
	}
	for len(bufs) > 0 {
		switch n, err := io(fd, bufs, off); {
		case err == unix.EINTR:
		case err != nil:
			return fmt.Errorf("targets: %s %s at %d: %w", what, d.path, off, err)
		case n == 0:
			return fmt.Errorf("%w: %s %s at %d", ErrShortIO, what, d.path, off)
		default:
			off += int64(n)
			bufs = consumed(bufs, n)
		}
	}
	return nil
}

// consumed is what is left of bufs once their first n bytes are done.
func consumed(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if n > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

// directVector says whether bufs, from off, may go to d's direct
// descriptor as they are: every buffer whole blocks of it in aligned
// memory, and the whole a range directOK takes.
func directVector(d *Dev, bufs [][]byte, off int64) bool {
	n := int64(0)
	for _, b := range bufs {
		if len(b) == 0 || int64(len(b))%d.directBlock() != 0 || !aligned(b) {
			return false
		}
		n += int64(len(b))
	}
	return d.directOK(off, n)
}
