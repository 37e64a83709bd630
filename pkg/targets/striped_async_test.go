package targets

import (
	"bytes"
	"context"
	"syscall"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/aio"
)

// A striped target over block devices read with O_DIRECT takes a request
// within one chunk through its leg's AIO, counts it against that leg (an
// error too, turning it D), and leaves a request across chunks to the
// ordinary path.
func TestStripedAsync(t *testing.T) {
	if aio.Shared() == nil {
		t.Skip("no Linux AIO here")
	}
	a, b := testkit.Loop(t, tempFile(t, 1<<20), 0), testkit.Loop(t, tempFile(t, 1<<20), 0)
	set := NewDevSet(false)
	defer set.Close()
	tg, err := newStriped([]string{"2", "8", a, "0", b, "0"}, 4096, set)
	if err != nil {
		t.Fatal(err)
	}
	s := tg.(*striped)
	if !s.CanAsync() {
		t.Fatal("striped over direct block devices does not take async requests")
	}
	ctx := context.Background()
	data := bytes.Repeat([]byte{0x3c}, 4096)
	run := func(kind AsyncKind, p []byte, off int64, start func(done func(error)) bool) error {
		return s.AsyncErr(kind, off, int64(len(p)), awaitAsync(t, start))
	}
	// The second chunk: leg 1, at its offset 0.
	if err := run(AsyncWrite, data, 4096, func(done func(error)) bool { return s.WriteAsync(ctx, data, 4096, done) }); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	if err := run(AsyncRead, got, 4096, func(done func(error)) bool { return s.ReadAsync(ctx, got, 4096, done) }); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	if err := s.legs[1].dev.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the chunk is not at leg 1's offset 0: %v", err)
	}
	if ops, n := s.legs[1].stats.Ops.Load(), s.legs[1].stats.Bytes.Load(); ops != 2 || n != 8192 || s.legs[0].stats.Ops.Load() != 0 {
		t.Fatalf("leg 1 counted %d ops, %d bytes (leg 0 %d ops); want 2, 8192, 0", ops, n, s.legs[0].stats.Ops.Load())
	}
	if s.ReadAsync(ctx, make([]byte, 8192), 2048, func(error) { t.Error("done of a request not started") }) {
		t.Fatal("a read across two chunks went async")
	}
	if err := s.AsyncErr(AsyncRead, 4096, 4096, syscall.EIO); err == nil || s.legs[1].stats.Errors.Load() != 1 {
		t.Fatalf("a failed async read: %v, leg 1 errors %d", err, s.legs[1].stats.Errors.Load())
	}
	if st := s.Status(StatusInfo); st != "2 "+a+" "+b+" 1 AD" {
		t.Fatalf("status after a leg's failed async read: %q", st)
	}
}
