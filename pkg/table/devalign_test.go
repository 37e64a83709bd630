package table

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/targets"
)

// refused checks that err is ErrAlign at line with dm's words.
func refused(t *testing.T, text string, err error, line int, reason string) {
	t.Helper()
	var le *LineError
	if !errors.As(err, &le) || le.Line != line || !errors.Is(err, ErrAlign) {
		t.Fatalf("%q: got %v, want ErrAlign at line %d", text, err, line)
	}
	if !strings.Contains(err.Error(), reason) {
		t.Fatalf("%q: %v does not say %q", text, err, reason)
	}
}

// A target whose area on a device is not whole blocks of the target's
// logical block size (its devices' largest, and crypt's sector_size) is
// refused at load with its line, as dm's device_area_is_invalid refuses
// it; the device keeps no such table.
func TestDeviceAreaAlignment(t *testing.T) {
	uri, file, _ := remote4k(t)
	cases := []struct {
		name, text string
		line       int
		reason     string
	}{
		{"linear start", "0 8 linear " + file + " 0\n8 16 linear " + uri + " 1", 2,
			"linear: not aligned to the logical block size: start=1 not aligned to h/w logical block size 4096 of " + uri},
		{"linear len", "0 12 linear " + uri + " 8", 1,
			"len=12 not aligned to h/w logical block size 4096 of " + uri},
		// A striped target's legs are checked against the largest block
		// of all its legs, the file's too.
		{"striped file leg", "0 32 striped 2 8 " + file + " 4 " + uri + " 0", 1,
			"striped: not aligned to the logical block size: start=4 not aligned to h/w logical block size 4096 of " + file},
		{"striped remote leg", "0 32 striped 2 8 " + file + " 0 " + uri + " 16\n32 16 linear " + uri + " 3", 2,
			"start=3 not aligned to h/w logical block size 4096 of " + uri},
		{"striped width", "0 24 striped 2 4 " + file + " 0 " + uri + " 0", 1,
			"len=12 not aligned to h/w logical block size 4096 of " + file},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := FromText(c.text, false)
			refused(t, c.text, err, c.line, c.reason)
		})
	}
	t.Run("loop device", func(t *testing.T) {
		loop := loop4k(t)
		text := "0 16 linear " + loop + " 4"
		_, err := FromText(text, false)
		refused(t, text, err, 1, "start=4 not aligned to h/w logical block size 4096 of "+loop)
		tb := mustTable(t, "0 16 linear "+loop+" 8")
		tb.destroy(discardLog(), false)
	})
	// A device's load refuses it and keeps the table it had.
	d := newLiveDevice(t, "0 16 linear "+uri+" 0")
	if err := d.LoadText("0 16 linear " + uri + " 1"); !errors.Is(err, ErrAlign) {
		t.Errorf("load of a misaligned linear: %v, want ErrAlign", err)
	}
	if d.LogicalBlockSize() != 4096 {
		t.Errorf("the live table's block size is %d", d.LogicalBlockSize())
	}
}

// The boundaries between targets follow dm's
// validate_hardware_logical_block_alignment with the devices' block
// sizes: what is left of a table block at a boundary falls to the next
// target, and must be whole blocks of that target's devices; the table
// ends on a block boundary.
func TestAlignmentWithDeviceBlocks(t *testing.T) {
	uri, file, _ := remote4k(t)
	cases := []struct {
		name, text string
		line       int // 0: taken
		reason     string
	}{
		{"7 sectors left fall to the export", "0 1 linear " + file + " 0\n1 16 linear " + uri + " 0\n17 7 zero", 2,
			"table line 1 (start sect 1 len 16) not aligned to h/w logical block size 4096"},
		{"table ends inside a block", "0 8 linear " + uri + " 0\n8 1 zero", 2,
			"table line 2 (start sect 8 len 1) not aligned to h/w logical block size 4096"},
		{"a block split among files and zero", "0 8 linear " + uri + " 0\n8 7 zero\n15 1 linear " + file + " 0", 0, ""},
		{"file then export, aligned", "0 8 linear " + file + " 0\n8 8 linear " + uri + " 0", 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb, err := FromText(c.text, false)
			if c.line == 0 {
				if err != nil {
					t.Fatalf("refused a table dm takes: %v", err)
				}
				tb.destroy(discardLog(), false)
				return
			}
			refused(t, c.text, err, c.line, c.reason)
		})
	}
}

// A snapshot's chunk size must be whole blocks of its origin and its COW
// device, as dm's exception store refuses it ("Chunk size is not a
// multiple of device blocksize"), before a new store's header is written.
func TestSnapshotChunkFitsDeviceBlocks(t *testing.T) {
	uri, _, m := remote4k(t)
	origin := testkit.Sparse(t, t.TempDir(), "origin.img", 1<<20)
	text := "0 16 snapshot " + origin + " " + uri + " N 4"
	_, err := FromText(text, false)
	var le *LineError
	if !errors.As(err, &le) || le.Line != 1 || !errors.Is(err, targets.ErrSnapChunkBlocks) {
		t.Fatalf("%q: got %v, want ErrSnapChunkBlocks at line 1", text, err)
	}
	tb := mustTable(t, "0 16 snapshot "+origin+" "+uri+" N 8")
	if err := tb.WriteAt(context.Background(), make([]byte, 4096), 4096, 0); err != nil {
		t.Errorf("a write through a snapshot of 4 KiB chunks on the export: %v", err)
	}
	tb.destroy(discardLog(), false)
	if n := m.Refusals(); n != 0 {
		t.Errorf("the export refused %d requests for their alignment", n)
	}
	loop := loop4k(t)
	text = "0 16 snapshot " + origin + " " + loop + " P 4"
	if _, err := FromText(text, false); !errors.Is(err, targets.ErrSnapChunkBlocks) {
		t.Fatalf("%q: got %v, want ErrSnapChunkBlocks", text, err)
	}
	hdr := make([]byte, 512)
	f, err := os.Open(loop)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(hdr, 0); err != nil || !bytes.Equal(hdr, make([]byte, 512)) {
		t.Errorf("the refused store's header was written (%v)", err)
	}
	tb = mustTable(t, "0 16 snapshot "+origin+" "+loop+" P 8")
	tb.destroy(discardLog(), false)
}

// A snapshot's COW device counts in its block size and is checked whole,
// as dm's snapshot_iterate_devices lists it (0, its size): a COW file of
// an odd number of sectors under an origin of 4 KiB blocks is refused.
func TestSnapshotCowArea(t *testing.T) {
	loop := loop4k(t)
	dir := t.TempDir()
	odd := testkit.Sparse(t, dir, "odd.cow", 1<<20+512)
	text := "0 16 snapshot " + loop + " " + odd + " N 8"
	_, err := FromText(text, false)
	refused(t, text, err, 1, "snapshot: not aligned to the logical block size: len=2049 not aligned to h/w logical block size 4096 of "+odd)
	tb := mustTable(t, "0 16 snapshot "+loop+" "+testkit.Sparse(t, dir, "even.cow", 1<<20)+" N 8")
	tb.destroy(discardLog(), false)
}

// A persistent snapshot store on an export of 4 KiB blocks is read and
// written in whole blocks: its header too, which was read as one sector
// and refused (EINVAL) by such a server.
func TestSnapshotPersistentOn4KExport(t *testing.T) {
	uri, _, m := remote4k(t)
	origin := testkit.Sparse(t, t.TempDir(), "origin.img", 1<<20)
	for range 2 { // a new store, then the one just made
		tb, err := FromText("0 16 snapshot "+origin+" "+uri+" P 8", false)
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.WriteAt(context.Background(), make([]byte, 4096), 4096, 0); err != nil {
			t.Errorf("a write through the snapshot: %v", err)
		}
		tb.destroy(discardLog(), false)
	}
	if n := m.Refusals(); n != 0 {
		t.Errorf("the export refused %d requests for their alignment", n)
	}
}
