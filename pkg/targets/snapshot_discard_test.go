package targets

import (
	"bytes"
	"testing"
)

// With discard_zeroes_cow a discard zeroes the exceptions it covers whole
// and discards on the COW device the part of an exception it covers in
// part (dm cuts the bio at chunks and remaps such a piece to the COW
// device, where a file or a block device then reads zeros); chunks without
// an exception keep reading the origin, and the origin is not touched.
// Without the feature a discard changes nothing.
func TestSnapshotDiscardZeroesCow(t *testing.T) {
	const chunk = 4096
	for _, zeroes := range []bool{true, false} {
		orig := fillPattern(t, 16*chunk, 7)
		args := []string{orig, tempFile(t, 32*chunk), "P", "8"}
		if zeroes {
			args = append(args, "1", "discard_zeroes_cow")
		}
		s := newSnapTable(t, "snapshot", 16*chunk/512, args...).resume()
		// Exceptions in chunks 0, 1, 3, 4 and 5; chunk 2 stays on
		// the origin.
		data := bytes.Repeat([]byte{0xa5}, chunk)
		for _, c := range []int64{0, 1, 3, 4, 5} {
			s.mustWrite(data, c*chunk, 0)
		}
		origBefore := readFile(t, orig)
		want := s.mustRead(0, 16*chunk)
		for _, d := range []struct{ off, n int64 }{
			{0, chunk},                  // chunk 0 whole
			{chunk + 512, 1024},         // inside chunk 1
			{2*chunk + 512, 1024},       // inside chunk 2: no exception
			{3*chunk + 2048, 2 * chunk}, // chunk 3's tail, 4 whole, 5's head
		} {
			if err := s.tg.Trim(t.Context(), d.off, d.n); err != nil {
				t.Fatalf("discard %d@%d: %v", d.n, d.off, err)
			}
			if zeroes && (d.off < 2*chunk || d.off >= 3*chunk) {
				clear(want[d.off : d.off+d.n])
			}
		}
		if got := s.mustRead(0, 16*chunk); !bytes.Equal(got, want) {
			i := 0
			for got[i] == want[i] {
				i++
			}
			t.Errorf("discard_zeroes_cow=%v: the snapshot reads %#x at %d (chunk %d), want %#x", zeroes, got[i], i, i/chunk, want[i])
		}
		if !bytes.Equal(readFile(t, orig), origBefore) {
			t.Errorf("discard_zeroes_cow=%v: the origin changed without discard_passdown_origin", zeroes)
		}
	}
}

// Which snapshot targets take discards, as dm sets them up: a snapshot
// (and snapshot-merge, built by the same constructor) only with
// discard_zeroes_cow, snapshot-origin never. A table with one that does
// not has no discard support, and its export no TRIM.
func TestSnapshotDiscardSupport(t *testing.T) {
	orig := fillPattern(t, 64<<10, 8)
	for _, c := range []struct {
		typ  string
		args []string
		want bool
	}{
		{"snapshot-origin", []string{orig}, false},
		{"snapshot", []string{orig, tempFile(t, 1<<20), "P", "8"}, false},
		{"snapshot", []string{orig, tempFile(t, 1<<20), "N", "8", "1", "discard_zeroes_cow"}, true},
		{"snapshot-merge", []string{orig, tempFile(t, 1<<20), "P", "8"}, false},
		{"snapshot-merge", []string{orig, tempFile(t, 1<<20), "P", "8", "1", "discard_zeroes_cow"}, true},
	} {
		tg := newSnapTable(t, c.typ, 128, c.args...).tg
		d, ok := tg.(Discarder)
		if !ok {
			t.Fatalf("%s is no Discarder: it would take discards whatever its line", c.typ)
		}
		if got := d.SupportsDiscard(); got != c.want {
			t.Errorf("%s %v: SupportsDiscard %v, want %v", c.typ, c.args[1:], got, c.want)
		}
	}
}
