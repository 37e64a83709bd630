package targets

import (
	"bytes"
	"context"
	"testing"
)

// A real block device: a loop device over a file. Its size comes from the
// BLKGETSIZE64 ioctl, I/O and zeroing work on it, and extents report data.
func TestLoopBlockDevice(t *testing.T) {
	loop := loopPath(t, 3<<20)
	s := NewDevSet(false)
	defer s.Close()
	d, err := s.Open(loop)
	if err != nil {
		t.Fatal(err)
	}
	if !d.blockDev || d.Size() != 3<<20 {
		t.Fatalf("%s: block device %v, size %d; want a block device of %d bytes", loop, d.blockDev, d.Size(), 3<<20)
	}
	if id := d.Identity(); !id.IsBlock() || id.Ino != 0 || id.Dev != 0 {
		t.Fatalf("%s: identity %+v; want the device number alone", loop, id)
	}
	if _, err := newLinear([]string{loop, "0"}, 6145, s); err == nil {
		t.Fatal("a linear target past the end of the block device was accepted")
	}
	tg, err := newLinear([]string{loop, "2048"}, 4096, s)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := bytes.Repeat([]byte("blockdev"), 8192)
	if err := tg.WriteAt(ctx, data, 4096, FUA); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if err := tg.ReadAt(ctx, got, 4096); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	if err := tg.Zero(ctx, 4096, 8192, ZeroFlags{}); err != nil {
		t.Fatal(err)
	}
	if err := tg.ReadAt(ctx, got[:8192], 4096); err != nil || !bytes.Equal(got[:8192], make([]byte, 8192)) {
		t.Fatalf("after zero: %v", err)
	}
	ext := collect(t, func(off, n int64, emit func(Extent) bool) error { return tg.Extents(ctx, off, n, emit) }, 0, 1<<20)
	if len(ext) != 1 || ext[0].Flags != 0 || ext[0].Length != 1<<20 {
		t.Fatalf("block device extents %v, want all data", ext)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}
