package targets

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/aio"
)

// aioLoop is a loop device over file, for a test of the AIO path: the
// test is skipped where the kernel has no AIO.
func aioLoop(t *testing.T, file string) string {
	t.Helper()
	if aio.Shared() == nil {
		t.Skip("no Linux AIO here")
	}
	return testkit.Loop(t, file, 0)
}

// asyncDone is testkit.Await's result passed through the device's AsyncErr,
// as the table does.
func asyncDone(t *testing.T, d *Dev, kind AsyncKind, off int64, start func(done func(error)) bool) error {
	t.Helper()
	return d.asyncErr(kind, off, testkit.Await(t, start))
}

// A linear target over a block device read with O_DIRECT takes requests
// asynchronously (through AIO): aligned and unaligned memory round-trip,
// a read past the device's end is ErrShortIO, and a range that is not
// whole blocks is left to the ordinary path. Through the page cache it
// takes none.
func TestBlockDeviceAsync(t *testing.T) {
	if aio.Shared() == nil {
		t.Skip("no Linux AIO here")
	}
	d, _ := openLoop(t, 1<<20, OpenOptions{})
	set := NewDevSet(false)
	defer set.Close()
	tg, err := newLinear([]string{d.Path(), "0"}, 2048, set)
	if err != nil {
		t.Fatal(err)
	}
	if !tg.(AsyncTarget).CanAsync() {
		t.Fatal("linear over a direct block device does not take async requests")
	}
	ctx := context.Background()
	raw := make([]byte, 64<<10+1)
	for i := range raw {
		raw[i] = byte(i * 13)
	}
	for _, p := range [][]byte{raw[:64<<10], raw[1:]} { // aligned, then not
		if err := asyncDone(t, d, AsyncWrite, 8192, func(done func(error)) bool { return d.WriteAsync(ctx, p, 8192, done) }); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(p)+1)[1:]
		if err := asyncDone(t, d, AsyncRead, 8192, func(done func(error)) bool { return d.ReadAsync(ctx, got, 8192, done) }); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, p))
		}
	}
	// A read past the device's end (as opened) is left to the blocking
	// path, which says ErrShortIO; one past an end that moved after the
	// open (a shrunk device) is the kernel's short count, the same error.
	end := d.Size() - 512
	if d.ReadAsync(ctx, make([]byte, 4096), end, func(error) { t.Error("done of a request not started") }) {
		t.Fatal("a read past the end went async")
	}
	if err := d.ReadAt(make([]byte, 4096), end); !errors.Is(err, ErrShortIO) {
		t.Fatalf("read past the end: %v, want ErrShortIO", err)
	}
	d.size += 4096
	if err := asyncDone(t, d, AsyncRead, end, func(done func(error)) bool { return d.ReadAsync(ctx, make([]byte, 4096), end, done) }); !errors.Is(err, ErrShortIO) {
		t.Fatalf("async read past a moved end: %v, want ErrShortIO", err)
	}
	d.size -= 4096
	if d.ReadAsync(ctx, make([]byte, 100), 0, func(error) { t.Error("done of a request not started") }) {
		t.Fatal("a read of part of a sector went async")
	}
	cachedSet := NewDevSetWith(false, OpenOptions{BlockPageCache: true})
	defer cachedSet.Close()
	ctg, err := newLinear([]string{d.Path(), "0"}, 2048, cachedSet)
	if err != nil {
		t.Fatal(err)
	}
	if ctg.(AsyncTarget).CanAsync() {
		t.Fatal("linear over a block device served through the page cache takes async requests")
	}
}
