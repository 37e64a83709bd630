package table

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
	"github.com/gdm-project/gdm/pkg/targets"
)

// remote4k serves an export of 1 MiB that advertises a minimum block size
// of 4096 and refuses requests not aligned to it, and returns its URI and
// the export; file is a sparse 1 MiB file.
func remote4k(t *testing.T) (uri, file string, m *nbdtest.Mem) {
	t.Helper()
	m = nbdtest.NewMem(1 << 20)
	m.SetMinBlock(4096)
	srv := nbdtest.Start(t, nbdtest.Exports{"4k": m})
	return srv.URI("4k"), testkit.Sparse(t, t.TempDir(), "f.img", 1<<20), m
}

// loop4k attaches a loop device of 4 KiB logical sectors over a fresh
// 1 MiB file, for the test's length (skipped as pkg/targets' block
// device tests skip, without root or losetup).
func loop4k(t *testing.T) string {
	t.Helper()
	return testkit.Loop(t, testkit.Sparse(t, t.TempDir(), "loop.img", 1<<20), 4096)
}

// A table's logical block size stacks its devices' too, as dm's does: a
// linear target on an export with a minimum block size of 4096 makes the
// table's 4096, whichever target it is, and one on a file leaves 512; a
// log-writes log device on the export does not count (the oracle found
// gdm stacking it).
func TestLogicalBlockSizeFromDevices(t *testing.T) {
	uri, file, m := remote4k(t)
	for _, c := range []struct {
		text string
		want int
	}{
		{"0 16 linear " + file + " 0", 512},
		{"0 16 linear " + uri + " 0", 4096},
		{"0 8 linear " + file + " 0\n8 8 linear " + uri + " 8", 4096},
		{"0 32 striped 2 8 " + file + " 0 " + uri + " 0", 4096},
		// log-writes maps its data device only, as dm's iterate_devices
		// lists it: its log device's blocks do not stack.
		{"0 16 log-writes " + file + " " + uri, 512},
		{"0 16 log-writes " + uri + " " + file, 4096},
	} {
		tb, err := FromText(c.text, false)
		if err != nil {
			t.Fatalf("%q: %v", c.text, err)
		}
		if got := tb.LogicalBlockSize(); got != c.want {
			t.Errorf("%q: LogicalBlockSize %d, want %d", c.text, got, c.want)
		}
		// I/O of the table's blocks reaches the export aligned.
		p := make([]byte, tb.LogicalBlockSize())
		if err := tb.WriteAt(context.Background(), p, int64(len(p)), 0); err != nil {
			t.Errorf("%q: write of a block: %v", c.text, err)
		}
		tb.destroy(discardLog(), false)
	}
	if n := m.Refusals(); n != 0 {
		t.Errorf("the export refused %d requests for their alignment", n)
	}
	loop := loop4k(t)
	tb := mustTable(t, "0 16 linear "+loop+" 8")
	defer tb.destroy(discardLog(), false)
	if got := tb.LogicalBlockSize(); got != 4096 {
		t.Errorf("a linear on a loop device of 4 KiB sectors: LogicalBlockSize %d, want 4096", got)
	}
}

// On a table of 4 KiB blocks, I/O that is not whole blocks is refused
// with EINVAL by the table itself (as the block layer refuses such a bio
// before dm), so it never reaches the export (a leg's refusal would count
// against the leg); block status is not held to it.
func TestUnalignedIORefusedByTheTable(t *testing.T) {
	uri, _, m := remote4k(t)
	d := newLiveDevice(t, "0 64 linear "+uri+" 0")
	defer d.Close()
	ctx := context.Background()
	for name, err := range map[string]error{
		"read at 512":   d.ReadAt(ctx, make([]byte, 4096), 512),
		"read of 512":   d.ReadAt(ctx, make([]byte, 512), 0),
		"write at 1024": d.WriteAt(ctx, make([]byte, 4096), 1024),
		"trim of 512":   d.Trim(ctx, 0, 512),
		"zero at 512":   d.Zero(ctx, 512, 4096, targets.ZeroFlags{}),
	} {
		if !errors.Is(err, ErrUnaligned) || !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%s: %v, want ErrUnaligned (EINVAL)", name, err)
		}
	}
	if err := d.ReadAt(ctx, make([]byte, 4096), 4096); err != nil {
		t.Fatalf("a whole block: %v", err)
	}
	if n := m.Refusals(); n != 0 {
		t.Errorf("%d unaligned requests reached the export", n)
	}
	var extents int
	if err := d.Extents(ctx, 512, 1024, func(targets.Extent) bool { extents++; return true }); err != nil || extents == 0 {
		t.Errorf("block status of a part of a block: %v, %d extents", err, extents)
	}
}
