package targets

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// failingStripes builds `striped 2 8` over two files of 64 KiB and makes
// leg 0 fail every write, trim and zero: it is swapped for the same file
// opened read-only. It returns the target and leg 1's file.
func failingStripes(t *testing.T) (*striped, string) {
	t.Helper()
	a, b := tempFile(t, 64<<10), tempFile(t, 64<<10)
	set, ro := NewDevSet(false), NewDevSet(true)
	t.Cleanup(func() { set.Close(); ro.Close() })
	s := buildStriped(t, set, 2*64, "2", "8", a, "0", b, "0")
	var err error
	if s.legs[0].dev, err = ro.Open(a); err != nil {
		t.Fatal(err)
	}
	return s, b
}

// buildStriped makes a striped target of sectors from its arguments, its
// devices opened in set.
func buildStriped(t *testing.T, set *DevSet, sectors uint64, args ...string) *striped {
	t.Helper()
	parsed, err := checkStriped(args, sectors)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := newStriped(parsed, sectors, set)
	if err != nil {
		t.Fatal(err)
	}
	return tg.(*striped)
}

// dm splits a bio at chunk boundaries and submits every piece, whatever
// becomes of the others (their errors come back at completion): a write
// over a failing leg and a good one fails, and the good leg's part is
// written. gdm stopped at the failing piece, leaving the good leg's part
// unwritten.
func TestStripedWriteGoesOnPastAFailingLeg(t *testing.T) {
	s, good := failingStripes(t)
	data := bytes.Repeat([]byte{0xa5}, 8192) // chunk 0 (leg 0), chunk 1 (leg 1)
	if err := s.WriteAt(context.Background(), data, 0, FUA); err == nil {
		t.Fatal("a write over a read-only leg succeeded")
	}
	got, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:4096], data[4096:]) {
		t.Fatal("leg 1's part of a write that failed on leg 0 was not written, as dm writes it")
	}
	if st := s.Status(StatusInfo); !strings.HasSuffix(st, " 1 DA") {
		t.Fatalf("status %q, want ...1 DA", st)
	}
}

// dm sends a discard and a write-zeroes to every stripe (num_discard_bios
// and num_write_zeroes_bios are the stripe count), each on its own: one
// leg's failure leaves the others' done.
func TestStripedTrimAndZeroGoOnPastAFailingLeg(t *testing.T) {
	for _, op := range []string{"trim", "zero"} {
		t.Run(op, func(t *testing.T) {
			s, good := failingStripes(t)
			if err := os.WriteFile(good, bytes.Repeat([]byte{0xff}, 64<<10), 0o600); err != nil {
				t.Fatal(err)
			}
			var err error
			if op == "trim" {
				err = s.Trim(context.Background(), 0, 64<<10)
			} else {
				err = s.Zero(context.Background(), 0, 64<<10, ZeroFlags{})
			}
			if err == nil {
				t.Fatalf("a %s over a read-only leg succeeded", op)
			}
			got, err := os.ReadFile(good)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:32<<10], make([]byte, 32<<10)) {
				t.Fatalf("leg 1's part of a %s that failed on leg 0 was not done, as dm does it", op)
			}
		})
	}
}

// A read over two failing legs fails, and dm's end_io counts the error of
// each piece against its leg: both turn D. gdm stopped at the first piece
// and showed DA.
func TestStripedReadCountsEveryFailingLeg(t *testing.T) {
	a, b := tempFile(t, 64<<10), tempFile(t, 64<<10)
	set := NewDevSet(false)
	defer set.Close()
	args, err := checkStriped([]string{"2", "8", a, "0", b, "0"}, 2*64)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := newStriped(args, 2*64, set)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{a, b} { // both legs now end before their first chunk
		if err := os.Truncate(f, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := tg.ReadAt(context.Background(), make([]byte, 8192), 0); err == nil {
		t.Fatal("a read past both truncated legs succeeded")
	}
	if st := tg.Status(StatusInfo); !strings.HasSuffix(st, " 1 DD") {
		t.Fatalf("status %q, want ...1 DD as dm", st)
	}
}

// The same for a spliced read, the NBD server's path for a large one: its
// pieces after the failed one are read too, for their legs' counts.
func TestStripedSpliceCountsEveryFailingLeg(t *testing.T) {
	a, b := tempFile(t, 64<<10), tempFile(t, 64<<10)
	st := newSnapTable(t, "striped", 2*64, "2", "8", a, "0", b, "0")
	for _, f := range []string{a, b} {
		if err := os.Truncate(f, 0); err != nil {
			t.Fatal(err)
		}
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if err := st.tg.SpliceTo(context.Background(), p[1], 0, 8192); err == nil || errors.Is(err, ErrPipeFull) {
		t.Fatalf("a spliced read past both truncated legs: %v, want their error", err)
	}
	if s := st.tg.Status(StatusInfo); !strings.HasSuffix(s, " 1 DD") {
		t.Fatalf("status %q, want ...1 DD as dm", s)
	}
	for i, l := range st.tg.(Legged).Legs() {
		if ops, errs := l.Ops.Load(), l.Errors.Load(); ops != 1 || errs != 1 {
			t.Errorf("leg %d: %d ops, %d errors; want 1, 1", i, ops, errs)
		}
	}
}
