package targets

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// loopPath attaches a loop device over a fresh file of size bytes, for
// the test's length, and returns its path.
func loopPath(t *testing.T, size int64) string {
	t.Helper()
	return testkit.Loop(t, tempFile(t, size), 0)
}

// loopDev attaches a loop device over a fresh file of size bytes and opens
// it in a DevSet.
func loopDev(t *testing.T, size int64) *Dev {
	t.Helper()
	d, _ := openLoop(t, size, OpenOptions{})
	return d
}

// A block device refuses a fallocate whose range is not aligned to its
// logical block size with EINVAL, which is also how a kernel without the
// mode answers. An NBD client may send any byte range (the export is
// byte-granular), and one unaligned trim or zero must not make the device
// take every later one for unsupported: trims then did nothing at all, and
// every fast zero failed, for as long as the table lived.
func TestBlockDeviceUnalignedTrimZero(t *testing.T) {
	d := loopDev(t, 1<<20)
	data := bytes.Repeat([]byte{0xa5}, 64<<10)
	if err := d.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Trim(1, 1000); err != nil {
		t.Fatalf("unaligned trim: %v", err)
	}
	if err := d.Zero(4097, 1000, ZeroFlags{}); err != nil {
		t.Fatalf("unaligned zero: %v", err)
	}
	got := make([]byte, len(data))
	if err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(data)
	clear(want[4097 : 4097+1000])
	if !bytes.Equal(got[:8192], want[:8192]) {
		t.Fatal("an unaligned zero did not zero exactly its range")
	}
	if err := d.Zero(16<<10, 4096, ZeroFlags{Fast: true}); errors.Is(err, ErrNotSupported) {
		t.Fatal("after an unaligned zero, an aligned fast zero is refused as unsupported")
	} else if err != nil {
		t.Fatal(err)
	}
	if err := d.Trim(32<<10, 32<<10); err != nil {
		t.Fatal(err)
	}
	if err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[16<<10:20<<10], make([]byte, 4096)) {
		t.Fatal("the aligned fast zero left data")
	}
	if !bytes.Equal(got[32<<10:], make([]byte, 32<<10)) {
		t.Fatal("after an unaligned trim, an aligned trim did nothing")
	}
}
