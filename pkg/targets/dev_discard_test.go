package targets

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A trim of a block device reaches it as a discard, as dm's does, and not
// as a write-zeroes (which a device with discard but without write-zeroes
// refuses): the loop device's own count of discarded sectors goes up by
// the range, and the range reads back as zeros (a loop device punches
// its file), the page cache over it dropped.
func TestBlockDeviceTrimIsDiscard(t *testing.T) {
	d := loopDev(t, 1<<20)
	data := bytes.Repeat([]byte{0x5a}, 256<<10)
	if err := d.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	before := discardedSectors(t, d.Path())
	if err := d.Trim(64<<10, 128<<10); err != nil {
		t.Fatal(err)
	}
	if got := discardedSectors(t, d.Path()) - before; got != 256 {
		t.Fatalf("%s: %d sectors discarded by a 128 KiB trim, want 256", d.Path(), got)
	}
	got := make([]byte, len(data))
	if err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := append(append(bytes.Repeat([]byte{0x5a}, 64<<10), make([]byte, 128<<10)...), bytes.Repeat([]byte{0x5a}, 64<<10)...)
	if !bytes.Equal(got, want) {
		t.Fatal("the trimmed range does not read back as zeros, or the rest changed")
	}
}

// discardedSectors is the sectors the block device at path has discarded,
// from its stat file in sysfs (field 14, Documentation/block/stat.rst).
func discardedSectors(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(path), "stat"))
	if err != nil {
		t.Skipf("no block stat for %s: %v", path, err)
	}
	f := strings.Fields(string(b))
	if len(f) < 15 {
		t.Skipf("%s's stat has no discard fields: %q", path, b)
	}
	n, err := strconv.ParseInt(f[13], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
