package targets

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// A spliced read that a later leg cannot fit in the pipe (ErrPipeFull) is
// read again by the caller with ReadAt, which counts it: the legs spliced
// before the refusal must not have counted it too.
func TestStripedSpliceFallbackCountsOnce(t *testing.T) {
	st := newSnapTable(t, "striped", 64, "2", "8", tempFile(t, 64<<10), "0", tempFile(t, 64<<10), "0")
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, 4096); err != nil {
		t.Fatal(err)
	}
	// Two chunks of 4 KiB, one a leg: the first fills the one-page pipe.
	if err := st.tg.SpliceTo(context.Background(), p[1], 0, 8192); !errors.Is(err, ErrPipeFull) {
		t.Fatalf("splice of 8 KiB into a 4 KiB pipe: %v, want ErrPipeFull", err)
	}
	st.mustRead(0, 8192) // the caller's fallback
	for i, l := range st.tg.(Legged).Legs() {
		if ops, b := l.Ops.Load(), l.Bytes.Load(); ops != 1 || b != 4096 {
			t.Errorf("leg %d: %d ops, %d bytes; want 1, 4096 (the read once)", i, ops, b)
		}
	}
}
