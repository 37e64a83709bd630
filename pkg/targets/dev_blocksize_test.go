package targets

import (
	"errors"
	"syscall"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// Every backing device reports its logical block size, as dm stacks a
// table's from its devices': a file 512, a remote export the minimum
// block size it advertises when above 512, a block device its BLKSSZGET.
func TestDevLogicalBlockSize(t *testing.T) {
	big, small := nbdtest.NewMem(1<<20), nbdtest.NewMem(1<<20)
	big.SetMinBlock(4096)
	small.SetMinBlock(256) // below a sector: gdm's requests are sectors anyway
	srv := nbdtest.Start(t, nbdtest.Exports{"big": big, "small": small, "any": nbdtest.NewMem(1 << 20)})
	set := NewDevSet(false)
	t.Cleanup(func() { set.Close() })
	for _, c := range []struct {
		path string
		want int64
	}{
		{tempFile(t, 1<<20), 512},
		{srv.URI("big"), 4096},
		{srv.URI("small"), 512},
		{srv.URI("any"), 512},
	} {
		d, err := set.Open(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.LogicalBlockSize(); got != c.want {
			t.Errorf("%s: logical block size %d, want %d", c.path, got, c.want)
		}
	}
	// The fake server refuses what its minimum block size forbids, as
	// such a server may: the reason gdm must not send it sectors.
	d, _ := set.Open(srv.URI("big"))
	if err := d.ReadAt(make([]byte, 512), 512); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("a 512-byte read of a 4096-byte export: %v, want EINVAL", err)
	}
	if err := d.ReadAt(make([]byte, 4096), 4096); err != nil {
		t.Errorf("an aligned read: %v", err)
	}
}

// loopPathSectors is loopPath with the loop device's logical block size
// set (losetup --sector-size).
func loopPathSectors(t *testing.T, size int64, sectorSize int) string {
	t.Helper()
	return testkit.Loop(t, tempFile(t, size), sectorSize)
}

// A block device of 4 KiB logical sectors reports 4096; one of 512, 512.
func TestBlockDeviceLogicalBlockSize(t *testing.T) {
	for _, want := range []int64{4096, 512} {
		loop := loopPathSectors(t, 1<<20, int(want))
		set := NewDevSet(false)
		t.Cleanup(func() { set.Close() }) // before the loop device goes
		d, err := set.Open(loop)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.LogicalBlockSize(); got != want {
			t.Errorf("%s: logical block size %d, want %d", d.Path(), got, want)
		}
	}
}
