package table

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"unsafe"
)

// A big allocation's 2 MiB-aligned inside is asked for in huge pages (in
// THP mode madvise), and the ask is taken back once it is filled; a small
// one is not asked for.
func TestMakeHugeAsksAndTakesBack(t *testing.T) {
	if _, r := makeHuge(hugeMin - 1); r != nil { // holding 2 MiB aligned, but small
		t.Fatalf("a small slice was advised: %d bytes", len(r))
	}
	huge := thpSize()
	if huge == 0 {
		t.Skip("THP mode is not madvise here: nothing is asked")
	}
	const n = 3 * hugeMin
	s, r := makeHuge(n)
	if len(r) == 0 {
		t.Fatal("a big slice was not advised")
	}
	lo, hi := uintptr(unsafe.Pointer(unsafe.SliceData(s))), uintptr(unsafe.Pointer(unsafe.SliceData(s)))+n
	at := uintptr(unsafe.Pointer(unsafe.SliceData(r)))
	if at%huge != 0 || uintptr(len(r))%huge != 0 || at < lo || at+uintptr(len(r)) > hi {
		t.Fatalf("range %#x+%d not huge-page-aligned inside %#x-%#x", at, len(r), lo, hi)
	}
	if f := vmFlags(t, at); !strings.Contains(f, " hg") {
		t.Fatalf("advised range's flags %q: no hg", f)
	}
	s = append(s, make([]byte, n)...)
	r.filled()
	if f := vmFlags(t, at); strings.Contains(f, " hg") || !strings.Contains(f, " nh") {
		t.Fatalf("filled range's flags %q: the ask is not taken back", f)
	}
}

// vmFlags is the VmFlags line of the mapping of this process holding addr.
func vmFlags(t *testing.T, addr uintptr) string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if span, _, ok := strings.Cut(line, " "); ok && strings.Contains(span, "-") && !strings.HasSuffix(span, ":") {
			a, b, _ := strings.Cut(span, "-")
			start, _ := strconv.ParseUint(a, 16, 64)
			end, _ := strconv.ParseUint(b, 16, 64)
			in = uint64(addr) >= start && uint64(addr) < end
			continue
		}
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok && in {
			return flags
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return ""
}

// ReadText gives back the text whatever size was announced: exact, none,
// too small (it grows) or too large, and a reader's error.
func TestReadTextAnySize(t *testing.T) {
	text := strings.Repeat("0 8 zero\n", 1000)
	for _, size := range []int64{int64(len(text)), -1, 0, 10, int64(len(text)) * 3} {
		got, err := ReadText(iotest.HalfReader(strings.NewReader(text)), size)
		if err != nil || string(got) != text {
			t.Errorf("size %d: %d bytes, %v", size, len(got), err)
		}
	}
	if _, err := ReadText(iotest.TimeoutReader(strings.NewReader(text)), int64(len(text))); err != iotest.ErrTimeout {
		t.Errorf("a reader's error: %v", err)
	}
}
