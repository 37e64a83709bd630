package targets

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// stripedOverLoops is a striped target of 2 MiB, 4 KiB chunks, over two
// loop devices of 1 MiB (a and b; b's file is fileB).
func stripedOverLoops(t *testing.T) (s *striped, a, b, fileB string) {
	t.Helper()
	fileB = tempFile(t, 1<<20)
	a, b = aioLoop(t, tempFile(t, 1<<20)), aioLoop(t, fileB)
	set := NewDevSet(false)
	t.Cleanup(func() { set.Close() })
	tg, err := newStriped([]string{"2", "8", a, "0", b, "0"}, 4096, set)
	if err != nil {
		t.Fatal(err)
	}
	return tg.(*striped), a, b, fileB
}

// A striped target over block devices read with O_DIRECT takes a request
// within one chunk through its leg's AIO, counts it against that leg (an
// error too, turning it D), and leaves a request across chunks whose
// pieces are not aligned in memory for O_DIRECT to the ordinary path.
func TestStripedAsync(t *testing.T) {
	s, a, b, _ := stripedOverLoops(t)
	if !s.CanAsync() {
		t.Fatal("striped over direct block devices does not take async requests")
	}
	ctx := context.Background()
	data := bytes.Repeat([]byte{0x3c}, 4096)
	run := func(kind AsyncKind, p []byte, off int64, start func(done func(error)) bool) error {
		return s.AsyncErr(kind, off, int64(len(p)), testkit.Await(t, start))
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
		t.Fatal("a read across two chunks, its second piece 2 KiB into the buffer, went async")
	}
	if err := s.AsyncErr(AsyncRead, 4096, 4096, syscall.EIO); err == nil || s.legs[1].stats.Errors.Load() != 1 {
		t.Fatalf("a failed async read: %v, leg 1 errors %d", err, s.legs[1].stats.Errors.Load())
	}
	if st := s.Status(StatusInfo); st != "2 "+a+" "+b+" 1 AD" {
		t.Fatalf("status after a leg's failed async read: %q", st)
	}
}

// A striped request across chunks goes to each leg as one vectored AIO
// request (striped_vectored.go): what it writes, from aligned memory or
// not, is what the blocking path reads, and the other way round; each
// leg counts its pieces as legIO would. A leg whose vector fails is redone
// piece by piece: only the pieces that fail (here, past the end of a leg
// shrunk under the table) count against it, as dm counts each clone.
func TestStripedVectored(t *testing.T) {
	s, _, b, fileB := stripedOverLoops(t)
	ctx := context.Background()
	raw := make([]byte, 64<<10+1)
	for i := range raw {
		raw[i] = byte(i*31 + i>>12)
	}
	async := func(kind AsyncKind, p []byte, off int64) error {
		return s.AsyncErr(kind, off, int64(len(p)), testkit.Await(t, func(done func(error)) bool {
			if kind == AsyncWrite {
				return s.WriteAsync(ctx, p, off, done)
			}
			return s.ReadAsync(ctx, p, off, done)
		}))
	}
	for _, p := range [][]byte{raw[:64<<10], raw[1:]} { // aligned, then not
		if err := async(AsyncWrite, p, 8192); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(p))
		if err := s.ReadAt(ctx, got, 8192); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("vectored write, blocking read: %v, equal %v", err, bytes.Equal(got, p))
		}
		rev := bytes.Clone(p)
		for i := range rev {
			rev[i] = ^rev[i]
		}
		if err := s.WriteAt(ctx, rev, 8192, 0); err != nil {
			t.Fatal(err)
		}
		got = make([]byte, len(p)+1)[1:]
		if err := async(AsyncRead, got, 8192); err != nil || !bytes.Equal(got, rev) {
			t.Fatalf("blocking write, vectored read: %v, equal %v", err, bytes.Equal(got, rev))
		}
	}
	// 8 requests of 64 KiB at 8 KiB, half of them vectored: 8 chunks on
	// each leg, 32 KiB, each.
	for i, l := range s.legs {
		if ops, n, errs := l.stats.Ops.Load(), l.stats.Bytes.Load(), l.stats.Errors.Load(); ops != 8*8 || n != 8*32<<10 || errs != 0 {
			t.Fatalf("leg %d counted %d ops, %d bytes, %d errors; want 64, 262144, 0", i, ops, n, errs)
		}
	}
	// Shrink leg b to 512 KiB: of a 64 KiB read at chunk 250, leg b's
	// chunks 251..265 lie at its 500..528 KiB, the last five past its end.
	if err := os.Truncate(fileB, 512<<10); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("losetup", "-c", b).CombinedOutput(); err != nil {
		t.Fatalf("losetup -c: %v: %s", err, out)
	}
	opsB := s.legs[1].stats.Ops.Load()
	if err := async(AsyncRead, make([]byte, 64<<10), 250*4096); !errors.Is(err, ErrShortIO) {
		t.Fatalf("a read across a shrunk leg's end: %v, want ErrShortIO", err)
	}
	if ops, errs := s.legs[1].stats.Ops.Load()-opsB, s.legs[1].stats.Errors.Load(); ops != 8 || errs != 5 || s.legs[0].stats.Errors.Load() != 0 {
		t.Fatalf("leg b counted %d ops and %d errors (leg a %d); want 8 and 5 (0)", ops, errs, s.legs[0].stats.Errors.Load())
	}
}
