package targets

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// tempFile makes a sparse file of size bytes in a fresh directory.
func tempFile(t *testing.T, size int64) string {
	return testkit.Sparse(t, t.TempDir(), "dev", size)
}

func TestParseNumber(t *testing.T) {
	cases := []struct {
		in   string
		want uint64
		err  error
	}{
		{"0", 0, nil}, {"0042", 42, nil}, {"18446744073709551615", 1<<64 - 1, nil},
		{"18446744073709551616", 0, ErrOverflow}, {"-1", 0, ErrNegative},
		{"-99999999999999999999", 0, ErrNegative}, {"", 0, ErrNotNumber},
		{"+1", 0, ErrNotNumber}, {"1e3", 0, ErrNotNumber}, {"-x", 0, ErrNotNumber},
	}
	for _, c := range cases {
		got, err := ParseNumber(c.in)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("ParseNumber(%q) = %d, %v; want %d, %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestDevSetOpensOnceClosesOnce(t *testing.T) {
	p := tempFile(t, 4096)
	s := NewDevSet(false)
	a, err := s.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Open(filepath.Join(filepath.Dir(p), ".", "dev"))
	if err != nil || a != b {
		t.Fatalf("second open of the same path gave a new device (%v)", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil || s.Closes() != 1 || !a.Closed() {
		t.Fatalf("closes=%d closed=%v err=%v", s.Closes(), a.Closed(), err)
	}
	if _, err := s.Open(p); err == nil {
		t.Fatal("open on a closed set succeeded")
	}
}

// collect gathers the extents of [off, off+n) from extents (a Dev's or a
// Target's Extents), merging adjacent runs of the same flags.
func collect(t *testing.T, extents func(off, n int64, emit func(Extent) bool) error, off, n int64) []Extent {
	t.Helper()
	var out []Extent
	if err := extents(off, n, func(e Extent) bool {
		if k := len(out); k > 0 && out[k-1].Flags == e.Flags {
			out[k-1].Length += e.Length
		} else {
			out = append(out, e)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDevHolesZeroAndExtents(t *testing.T) {
	p := tempFile(t, 1<<20)
	s := NewDevSet(false)
	defer s.Close()
	d, err := s.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{0xab}, 256<<10)
	if err := d.WriteAt(data, 256<<10); err != nil {
		t.Fatal(err)
	}
	// The file's holes are seen where the filesystem can say so
	// (SEEK_DATA); elsewhere every extent is data, and the zeroing and
	// early-stop checks below still run.
	got := collect(t, d.Extents, 0, 1<<20)
	want := []Extent{{256 << 10, ExtentHole | ExtentZero}, {256 << 10, 0}, {512 << 10, ExtentHole | ExtentZero}}
	if d.noSeekData.Load() {
		t.Logf("filesystem has no SEEK_DATA: extents are all data, hole layout not checked")
		want = []Extent{{1 << 20, 0}}
	}
	if !equalExtents(got, want) {
		t.Fatalf("extents %v, want %v", got, want)
	}
	// Zero punches a hole in the middle of the data; NoHole keeps it allocated.
	if err := d.Zero(320<<10, 64<<10, ZeroFlags{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Zero(448<<10, 16<<10, ZeroFlags{NoHole: true}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	if err := d.ReadAt(buf, 256<<10); err != nil {
		t.Fatal(err)
	}
	for i, b := range buf {
		zero := (i >= 64<<10 && i < 128<<10) || (i >= 192<<10 && i < 208<<10)
		if zero != (b == 0) {
			t.Fatalf("byte %d = %#x after zeroing", i, b)
		}
	}
	if !d.noPunch.Load() && !d.noSeekData.Load() {
		got = collect(t, d.Extents, 256<<10, 256<<10)
		want = []Extent{{64 << 10, 0}, {64 << 10, ExtentHole | ExtentZero}, {128 << 10, 0}}
		if !equalExtents(got, want) {
			t.Fatalf("after punch: extents %v, want %v", got, want)
		}
	}
	// An early stop is honoured.
	calls := 0
	d.Extents(0, 1<<20, func(Extent) bool { calls++; return false })
	if calls != 1 {
		t.Fatalf("emit called %d times after returning false", calls)
	}
}

func equalExtents(a, b []Extent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestShortBackingDevice(t *testing.T) {
	p := tempFile(t, 8192)
	s := NewDevSet(false)
	defer s.Close()
	tg, err := newLinear([]string{p, "0"}, 16, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 4096); err != nil {
		t.Fatal(err)
	}
	if err := tg.ReadAt(context.Background(), make([]byte, 8192), 0); !errors.Is(err, ErrShortIO) {
		t.Fatalf("read past a truncated file: %v, want ErrShortIO", err)
	}
}

// legRanges must give each leg exactly the bytes a chunk-by-chunk walk does.
func TestStripedLegRangesMatchChunkWalk(t *testing.T) {
	var paths []string
	for range 3 {
		paths = append(paths, tempFile(t, 1<<20))
	}
	s := NewDevSet(false)
	defer s.Close()
	args, err := checkStriped([]string{"3", "4", paths[0], "0", paths[1], "8", paths[2], "16"}, 48*12)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := newStriped(args, 48*12, s)
	if err != nil {
		t.Fatal(err)
	}
	st := tg.(*striped)
	size := int64(48 * 12 * 512)
	for _, r := range [][2]int64{{0, size}, {1, 1}, {2047, 2}, {100, 10000}, {6000, 2048}, {2048, 2048 * 3}, {size - 1, 1}} {
		walk := map[int][2]int64{}
		for off := r[0]; off < r[0]+r[1]; off++ {
			leg, devOff, _ := st.locate(off)
			w, ok := walk[leg]
			if !ok {
				w = [2]int64{devOff, devOff}
			}
			w[0], w[1] = min(w[0], devOff), max(w[1], devOff+1)
			walk[leg] = w
		}
		got := map[int][2]int64{}
		st.legRanges(r[0], r[1], func(leg int, devOff, n int64) error {
			got[leg] = [2]int64{devOff, devOff + n}
			return nil
		})
		if len(got) != len(walk) {
			t.Fatalf("range %v: legs %v, want %v", r, got, walk)
		}
		for leg, w := range walk {
			if got[leg] != w {
				t.Fatalf("range %v leg %d: %v, want %v", r, leg, got[leg], w)
			}
		}
	}
	if s := tg.Status(StatusInfo); !strings.HasPrefix(s, "3 ") || !strings.HasSuffix(s, " 1 AAA") {
		t.Fatalf("status %q", s)
	}
	st.count(1, syscall.EIO)
	if s := tg.Status(StatusInfo); !strings.HasSuffix(s, " 1 ADA") {
		t.Fatalf("status after a leg error %q, want ...1 ADA", s)
	}
}
