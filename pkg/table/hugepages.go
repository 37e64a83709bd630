package table

import (
	"bytes"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A big table's text is tens of megabytes of memory touched once, in
// order, as it is read, and then kept whole for the table's life. Faulting
// it in 4 KiB at a time was a fifth of a million-target create's CPU on a
// VM where a page fault costs ~15 µs; in 2 MiB pages it is 512 times fewer
// faults.
//
// The Go heap gets huge pages by itself where the kernel's THP mode is
// "always", and never where it is "never". Only in mode "madvise" (Debian's
// and Ubuntu's default) do they depend on asking, so only there does
// adviseHuge ask, for the huge-page-aligned inside of one big allocation,
// before its first touch, and takes the ask back (MADV_NOHUGEPAGE, which in
// that mode is what an address range gets by default) once the memory is
// filled: the huge pages made stay, and when the text is freed and the Go
// heap reuses those addresses for anything else, the kernel treats them as
// it treats the rest of the heap. What the text costs, dense and kept
// whole, is the same in either page size.
//
// The builder's arrays (offsets, starts, targets: 32 MB for a million)
// are not asked for: that cut a create's faults further, but made
// BenchmarkBuild, which builds table after table in one process on
// reused memory, use 20-35% more CPU, for no reason found.

// hugeMin is the smallest allocation worth asking for: below it, the
// inside aligned to a huge page (2 MiB on amd64) is small or empty.
const hugeMin = 4 << 20

// thpSize is the kernel's transparent huge page size if its THP mode is
// "madvise", else 0 (nothing to ask), read once.
var thpSize = sync.OnceValue(func() uintptr {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || !bytes.Contains(mode, []byte("[madvise]")) {
		return 0
	}
	size, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
	n, err2 := strconv.ParseUint(string(bytes.TrimSpace(size)), 10, 64)
	if err != nil || err2 != nil || n == 0 || n&(n-1) != 0 {
		return 0
	}
	return uintptr(n)
})

// hugeRange is the part of an allocation asked to take huge pages, or
// empty.
type hugeRange []byte

// adviseHuge asks for huge pages for the 2 MiB-aligned inside of size
// bytes at p, not yet touched, if that is worth asking (see above).
func adviseHuge(p unsafe.Pointer, size int) hugeRange {
	huge := thpSize()
	if size < hugeMin || huge == 0 {
		return nil
	}
	start := (uintptr(p) + huge - 1) &^ (huge - 1)
	end := (uintptr(p) + uintptr(size)) &^ (huge - 1)
	if end <= start {
		return nil
	}
	r := hugeRange(unsafe.Slice((*byte)(unsafe.Add(p, start-uintptr(p))), end-start))
	if unix.Madvise(r, unix.MADV_HUGEPAGE) != nil {
		return nil // an old kernel, or no THP: 4 KiB pages as before
	}
	return r
}

// filled takes the ask back, once the range's memory is touched.
func (r hugeRange) filled() {
	if len(r) > 0 {
		unix.Madvise(r, unix.MADV_NOHUGEPAGE)
	}
}

// makeHuge makes a byte slice of length 0 and capacity n whose memory, if
// it is big, is asked for in huge pages; the caller calls filled on the
// range when it has filled the slice.
func makeHuge(n int) ([]byte, hugeRange) {
	s := make([]byte, 0, n)
	return s, adviseHuge(unsafe.Pointer(unsafe.SliceData(s)), n)
}

// ReadText reads r to its end into one buffer of size bytes (plus one, to
// see the end without growing), in huge pages if big: a table's text of
// the size announced (a request's Content-Length, a file's size) is read
// straight into its place, in one allocation, and a 60 MB text costs 30
// page faults, not 15,000. A text with no size, or longer, grows the
// buffer by doubling. The caller may keep the buffer as the text without
// copying it (unsafe.String), if nothing writes to it after.
func ReadText(r io.Reader, size int64) ([]byte, error) {
	b, huge := makeHuge(int(max(size, 512) + 1))
	defer huge.filled()
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, len(b))
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
