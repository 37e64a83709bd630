package targets

import (
	"bytes"
	"context"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// A snapshot-origin over a block device read with O_DIRECT reads through
// AIO what its writes put there, into memory aligned or not. Its writes
// go through AIO too while they copy nothing: with no snapshot, or over
// chunks every snapshot has already (a rewrite); a write that must copy a
// chunk out, or whose range a snapshot read holds, declines, and the
// blocking path copies or waits. Through the page cache nothing is
// asynchronous.
func TestSnapOriginAsync(t *testing.T) {
	const size = 1 << 20
	loop := aioLoop(t, fillPattern(t, size, 5))
	o := newSnapTable(t, "snapshot-origin", size/512, loop)
	og := o.tg.(*snapOrigin)
	if !og.CanAsync() {
		t.Fatal("snapshot-origin over a direct block device does not read asynchronously")
	}
	ctx := context.Background()
	never := func(error) { t.Error("done of a request not started") }
	write := func(p []byte, off int64) error {
		return og.AsyncErr(AsyncWrite, off, int64(len(p)), testkit.Await(t, func(done func(error)) bool { return og.WriteAsync(ctx, p, off, done) }))
	}
	data := bytes.Repeat([]byte("origin!!"), 1024)
	if err := write(data, 8192); err != nil { // no snapshot yet
		t.Fatal(err)
	}
	for _, got := range [][]byte{make([]byte, len(data)), make([]byte, len(data)+1)[1:]} {
		err := og.AsyncErr(AsyncRead, 8192, int64(len(got)), testkit.Await(t, func(done func(error)) bool { return og.ReadAsync(ctx, got, 8192, done) }))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("async read: %v, equal %v", err, bytes.Equal(got, data))
		}
	}
	cow := testkit.Loop(t, testkit.Sparse(t, t.TempDir(), "cow", 2*size), 0)
	snap := newSnapTable(t, "snapshot", size/512, loop, cow, "P", "8").resume()
	if og.WriteAsync(ctx, data, 65536, never) {
		t.Fatal("an origin write whose chunks the snapshot has not copied went async")
	}
	o.mustWrite(data, 65536, 0)                         // the blocking path copies them out
	tok := og.entry.locks.lock(65536, 65536+4096, true) // as a snapshot read of the origin
	if og.WriteAsync(ctx, data, 65536, never) {
		t.Fatal("an origin write over a range a read holds went async")
	}
	tok.unlock()
	rewrite := bytes.Repeat([]byte{0x77}, len(data))
	if err := write(rewrite, 65536); err != nil {
		t.Fatal(err)
	}
	old := make([]byte, len(data))
	pattern(old, 65536, 5)
	if got := snap.mustRead(65536, int64(len(data))); !bytes.Equal(got, old) {
		t.Fatal("the snapshot lost the origin's old data over a rewrite")
	}
	if got, err := o.read(65536, int64(len(data))); err != nil || !bytes.Equal(got, rewrite) {
		t.Fatalf("the rewrite is not on the origin: %v", err)
	}
	if n := len(og.entry.locks.held); n != 0 {
		t.Fatalf("%d ranges still held after every write completed", n)
	}
	cached := NewDevSetWith(false, OpenOptions{BlockPageCache: true})
	defer cached.Close()
	ctg, err := newSnapOrigin([]string{loop}, size/512, cached)
	if err != nil {
		t.Fatal(err)
	}
	defer ctg.(*snapOrigin).Destroy()
	if ctg.(*snapOrigin).CanAsync() {
		t.Fatal("snapshot-origin over a block device served through the page cache reads asynchronously")
	}
}
