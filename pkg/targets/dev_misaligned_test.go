package targets

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A device of 4 KiB blocks fails, with EIO, a read, write, trim or zero
// that is not whole blocks, as the device fails such a bio under dm; whole
// blocks go through, and a device of 512-byte blocks keeps taking
// sub-block ranges. Before, the page cache served them all.
func TestBlockDeviceRefusesPartialBlocks(t *testing.T) {
	set := NewDevSet(false)
	big, small := loopPathSectors(t, 1<<20, 4096), loopPathSectors(t, 1<<20, 512)
	t.Cleanup(func() { set.Close() }) // before the loop devices go
	d4, err := set.Open(big)
	if err != nil {
		t.Fatal(err)
	}
	d512, err := set.Open(small)
	if err != nil {
		t.Fatal(err)
	}
	half := make([]byte, 2048)
	for name, err := range map[string]error{
		"read":         d4.ReadAt(half, 0),
		"write":        d4.WriteAt(half, 4096),
		"read at 2K":   d4.ReadAt(make([]byte, 4096), 2048),
		"trim":         d4.Trim(0, 2048),
		"zero":         d4.Zero(4096+512, 4096, ZeroFlags{}),
		"splice read":  d4.SpliceTo(-1, 0, 2048), // refused before the pipe is used
		"splice write": d4.WriteFromPipe(-1, 2048, 0),
	} {
		if !errors.Is(err, unix.EIO) {
			t.Errorf("%s of part of a 4 KiB block: %v, want EIO", name, err)
		}
	}
	block := bytes.Repeat([]byte{7}, 4096)
	if err := d4.WriteAt(block, 4096); err != nil {
		t.Fatalf("a whole block: %v", err)
	}
	if err := d4.Zero(8192, 4096, ZeroFlags{}); err != nil {
		t.Fatalf("zero of a whole block: %v", err)
	}
	if err := d512.ReadAt(half[:100], 3); err != nil {
		t.Fatalf("a sub-sector read of a 512-byte device: %v", err)
	}
}

// A striped target whose chunk (2 KiB) is smaller than its legs' blocks
// (4 KiB): dm takes the table, as its areas on the legs are whole
// blocks, and every piece of a request then fails on its leg, each leg
// counting it (status DD). A piece of whole blocks goes through.
func TestStripedChunkBelowLegBlock(t *testing.T) {
	a, b := loopPathSectors(t, 1<<20, 4096), loopPathSectors(t, 1<<20, 4096)
	set := NewDevSet(false)
	t.Cleanup(func() { set.Close() })
	s := buildStriped(t, set, 2*2048, "2", "4", a, "0", b, "0")
	if err := s.ReadAt(context.Background(), make([]byte, 4096), 0); !errors.Is(err, unix.EIO) {
		t.Fatalf("a read of 2 KiB pieces of 4 KiB legs: %v, want EIO", err)
	}
	if st := s.Status(StatusInfo); !strings.HasSuffix(st, " 1 DD") {
		t.Fatalf("status %q, want ...1 DD", st)
	}
	// 16 KiB from 0 is 8 KiB on each leg, contiguous there: a trim of it
	// goes to each leg whole, as dm sends it.
	if err := s.Trim(context.Background(), 0, 16384); err != nil {
		t.Fatalf("a trim of whole blocks on each leg: %v", err)
	}
}
