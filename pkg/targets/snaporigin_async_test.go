package targets

import (
	"bytes"
	"context"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/aio"
)

// A snapshot-origin over a block device read with O_DIRECT reads through
// AIO what its (blocking) writes put there, into memory aligned or not,
// and leaves its writes, which copy chunks first, to the blocking path.
// Through the page cache it takes nothing asynchronously.
func TestSnapOriginAsyncReads(t *testing.T) {
	if aio.Shared() == nil {
		t.Skip("no Linux AIO here")
	}
	loop := testkit.Loop(t, tempFile(t, 1<<20), 0)
	set := NewDevSet(false)
	defer set.Close()
	tg, err := newSnapOrigin([]string{loop}, 2048, set)
	if err != nil {
		t.Fatal(err)
	}
	o := tg.(*snapOrigin)
	defer o.Destroy()
	if !o.CanAsync() {
		t.Fatal("snapshot-origin over a direct block device does not read asynchronously")
	}
	ctx := context.Background()
	data := bytes.Repeat([]byte("origin!!"), 2048)
	if err := o.WriteAt(ctx, data, 8192, 0); err != nil {
		t.Fatal(err)
	}
	for _, got := range [][]byte{make([]byte, len(data)), make([]byte, len(data)+1)[1:]} {
		err := o.AsyncErr(AsyncRead, 8192, int64(len(got)), awaitAsync(t, func(done func(error)) bool { return o.ReadAsync(ctx, got, 8192, done) }))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("async read: %v, equal %v", err, bytes.Equal(got, data))
		}
	}
	if o.WriteAsync(ctx, data, 0, func(error) { t.Error("done of a write not started") }) {
		t.Fatal("an origin write went async")
	}
	cached := NewDevSetWith(false, OpenOptions{BlockPageCache: true})
	defer cached.Close()
	ctg, err := newSnapOrigin([]string{loop}, 2048, cached)
	if err != nil {
		t.Fatal(err)
	}
	defer ctg.(*snapOrigin).Destroy()
	if ctg.(*snapOrigin).CanAsync() {
		t.Fatal("snapshot-origin over a block device served through the page cache reads asynchronously")
	}
}
