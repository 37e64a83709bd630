package targets

import (
	"bytes"
	"context"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// A snapshot over block devices read with O_DIRECT reads a run without
// exceptions from the origin and one with them from the COW device,
// through AIO: after an origin write has copied a chunk out, the
// snapshot still reads the old data, from wherever it lies. A run whose
// range a write holds, a read across runs, and every write, decline, so
// the blocking path (which waits, or makes exceptions) takes them.
func TestSnapshotAsyncReads(t *testing.T) {
	const size = 1 << 20
	orig := aioLoop(t, fillPattern(t, size, 3))
	cow := testkit.Loop(t, testkit.Sparse(t, t.TempDir(), "cow", 2*size), 0)
	o := newSnapTable(t, "snapshot-origin", size/512, orig)
	st := newSnapTable(t, "snapshot", size/512, orig, cow, "P", "8").resume()
	s := st.tg.(*snapshot)
	if !s.CanAsync() {
		t.Fatal("a snapshot over direct block devices does not read asynchronously")
	}
	ctx := context.Background()
	old := make([]byte, 8192)
	pattern(old, 8192, 3)
	read := func(off int64, p []byte) error {
		return s.AsyncErr(AsyncRead, off, int64(len(p)), testkit.Await(t, func(done func(error)) bool { return s.ReadAsync(ctx, p, off, done) }))
	}
	got := make([]byte, 8192)
	if err := read(8192, got); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("a run without exceptions: %v, equal %v", err, bytes.Equal(got, old))
	}
	o.mustWrite(bytes.Repeat([]byte{0xee}, 4096), 8192, 0) // copies chunk 2 out
	got = make([]byte, 4097)[1:]
	if err := read(8192, got); err != nil || !bytes.Equal(got, old[:4096]) {
		t.Fatalf("a run with exceptions: %v, equal %v", err, bytes.Equal(got, old[:4096]))
	}
	never := func(error) { t.Error("done of a request not started") }
	if s.ReadAsync(ctx, make([]byte, 8192), 8192, never) {
		t.Fatal("a read across a mapped and an unmapped run went async")
	}
	tok := s.entry.locks.lock(12288, 16384, false) // as an origin write copying chunk 3
	if s.ReadAsync(ctx, make([]byte, 4096), 12288, never) {
		t.Fatal("a read of a range an origin write holds went async")
	}
	tok.unlock()
	if err := read(12288, got); err != nil || !bytes.Equal(got, old[4096:]) {
		t.Fatalf("the range released: %v, equal %v", err, bytes.Equal(got, old[4096:]))
	}
	if s.WriteAsync(ctx, make([]byte, 4096), 0, never) {
		t.Fatal("a snapshot write went async")
	}
	if n := len(s.entry.locks.held); n != 0 {
		t.Fatalf("%d ranges still held after every read completed", n)
	}
}
