package table

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/targets"
	"golang.org/x/sys/unix"
)

// pipeHolding is the read end of a pipe holding p.
func pipeHolding(t *testing.T, p []byte) int {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	if _, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, len(p)); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.Write(fds[1], p); err != nil || n != len(p) {
		t.Fatalf("filling a pipe: %d, %v", n, err)
	}
	return fds[0]
}

func randomBytes(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rand.Uint32())
	}
	return p
}

// TestWriteFromPipe: a write within a linear target over a local file goes
// from the pipe (then its tail) into the file at the target's offset, and
// is counted as a write; one across two targets, or into a target that
// does not write from pipes (zero), is declined with ErrPipeFull, nothing
// taken from its pipe and nothing counted.
func TestWriteFromPipe(t *testing.T) {
	f := testkit.Sparse(t, t.TempDir(), "f", 1<<20)
	// sectors 0-1023: f from 8 KiB on; 1024-2047: zero.
	d := newLiveDevice(t, "0 1024 linear "+f+" 16\n1024 1024 zero")
	defer d.Close()
	ctx := context.Background()
	if !d.MayWriteFromPipe(4096, 64<<10) || d.MayWriteFromPipe(512<<10-4096, 64<<10) || d.MayWriteFromPipe(600<<10, 64<<10) {
		t.Fatal("MayWriteFromPipe: want yes within the linear target, no across targets or within zero")
	}

	inPipe, tail := randomBytes(64<<10), randomBytes(1536)
	pipe := pipeHolding(t, inPipe)
	if err := d.WriteFromPipe(ctx, pipe, int64(len(inPipe)), tail, 4096); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(inPipe, tail...); !bytes.Equal(got[8192+4096:8192+4096+len(want)], want) {
		t.Fatal("the file does not hold the pipe's bytes and the tail at the target's offset")
	}
	if n, err := unix.IoctlGetInt(pipe, unix.TIOCINQ); err != nil || n != 0 {
		t.Fatalf("%d bytes left in the pipe (%v), want 0", n, err)
	}
	if ops, b := d.Stats().IO.ops[OpWrite].Load(), d.Stats().IO.bytes[OpWrite].Load(); ops != 1 || b != uint64(len(inPipe)+len(tail)) {
		t.Fatalf("counted %d writes of %d bytes, want 1 of %d", ops, b, len(inPipe)+len(tail))
	}

	for _, off := range []int64{512<<10 - 4096, 600 << 10} {
		pipe := pipeHolding(t, inPipe)
		if err := d.WriteFromPipe(ctx, pipe, int64(len(inPipe)), nil, off); err != targets.ErrPipeFull {
			t.Fatalf("write at %d: %v, want ErrPipeFull", off, err)
		}
		if n, _ := unix.IoctlGetInt(pipe, unix.TIOCINQ); n != len(inPipe) {
			t.Fatalf("write at %d took %d bytes from its pipe before declining", off, len(inPipe)-n)
		}
	}
	if ops := d.Stats().IO.ops[OpWrite].Load(); ops != 1 {
		t.Fatalf("declined writes were counted: %d writes, want 1", ops)
	}
}

// A read-only device writes nothing from a pipe.
func TestWriteFromPipeReadOnly(t *testing.T) {
	f := testkit.Sparse(t, t.TempDir(), "f", 1<<20)
	d := NewDevice("ro", true, discardLog())
	if err := d.LoadText("0 2048 linear " + f + " 0"); err != nil {
		t.Fatal(err)
	}
	if err := d.Resume(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.MayWriteFromPipe(0, 64<<10) {
		t.Fatal("MayWriteFromPipe says yes on a read-only device")
	}
	pipe := pipeHolding(t, randomBytes(64<<10))
	if err := d.WriteFromPipe(context.Background(), pipe, 64<<10, nil, 0); err != ErrReadOnly {
		t.Fatalf("WriteFromPipe on a read-only device: %v, want ErrReadOnly", err)
	}
}
