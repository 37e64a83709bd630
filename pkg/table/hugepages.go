package table

import (
	"bytes"
	"io"
	"os"
	"slices"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A big table's text and arrays are tens of megabytes of memory touched
// once, in order, and then kept whole for the table's life. Faulting them
// in 4 KiB at a time was a third of a million-target create on a VM where
// a page fault costs ~15 µs (more than its page's share of the build's
// work); in 2 MiB pages it is 512 times fewer faults.
//
// The Go heap gets huge pages by itself where the kernel's THP mode is
// "always", and never where it is "never". Only in mode "madvise" (the
// usual default of distributions) do they depend on asking, so only there
// does hugeRange ask, for the 2 MiB-aligned inside of one big allocation,
// before its first touch, and takes the ask back (MADV_NOHUGEPAGE, which in
// that mode is what an address range gets by default) once the memory is
// filled: the huge pages made stay, and when the table is freed and the Go
// heap reuses those addresses for anything else, the kernel treats them as
// it treats the rest of the heap. What the range costs, dense and kept
// whole, is the same in either page size.

// hugeMin is the smallest allocation worth asking for: below it, the
// 2 MiB-aligned inside is small or empty.
const hugeMin = 4 << 20

// hugePage is the size of a transparent huge page on amd64 and arm64
// (4 KiB base pages).
const hugePage = 2 << 20

// thpMadvise reports whether the kernel's THP mode is "madvise", read once.
var thpMadvise = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && bytes.Contains(b, []byte("[madvise]"))
})

// hugeRange is the part of an allocation asked to take huge pages, or
// empty.
type hugeRange []byte

// adviseHuge asks for huge pages for the 2 MiB-aligned inside of size
// bytes at p, not yet touched, if that is worth asking (see above).
func adviseHuge(p unsafe.Pointer, size int) hugeRange {
	if size < hugeMin || !thpMadvise() {
		return nil
	}
	start := (uintptr(p) + hugePage - 1) &^ (hugePage - 1)
	end := (uintptr(p) + uintptr(size)) &^ (hugePage - 1)
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

// makeHuge makes a slice of length 0 and capacity n whose memory, if it
// is big, is asked for in huge pages; the caller calls filled on the
// range when it has filled the slice.
func makeHuge[T any](n int) ([]T, hugeRange) {
	s := make([]T, 0, n)
	var zero T
	return s, adviseHuge(unsafe.Pointer(unsafe.SliceData(s)), n*int(unsafe.Sizeof(zero)))
}

// ReadText reads r to its end into one buffer of size bytes (plus one, to
// see the end without growing), in huge pages if big: a table's text of
// the size announced (a request's Content-Length, a file's size) is read
// straight into its place, in one allocation, and a 60 MB text costs 30
// page faults, not 15,000. A text with no size, or longer, grows the
// buffer by doubling. The caller may keep the buffer as the text without
// copying it (unsafe.String), if nothing writes to it after.
func ReadText(r io.Reader, size int64) ([]byte, error) {
	b, huge := makeHuge[byte](int(max(size, 512) + 1))
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
