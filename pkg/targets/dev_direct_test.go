package targets

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// openLoop attaches a loop device over a fresh file of size bytes and
// opens it in a DevSet under opts; it returns the device and the file.
func openLoop(t *testing.T, size int64, opts OpenOptions) (*Dev, string) {
	t.Helper()
	file := tempFile(t, size)
	loop := testkit.Loop(t, file, 0)
	s := NewDevSetWith(false, opts)
	t.Cleanup(func() { s.Close() })
	d, err := s.Open(loop)
	if err != nil {
		t.Fatal(err)
	}
	return d, file
}

// A block device's reads are the device's, not a cache's: what changed on
// the device underneath (here the loop device's file, written behind its
// back, as a device below dm fails or drops a write) is what the next
// read returns. Through the page cache (BlockPageCache), the read returns
// what gdm wrote before, from its cache.
func TestBlockDeviceReadsPastPageCache(t *testing.T) {
	for _, cached := range []bool{false, true} {
		d, file := openLoop(t, 1<<20, OpenOptions{BlockPageCache: cached})
		if d.DirectIO() == cached {
			t.Fatalf("BlockPageCache %v: direct I/O %v", cached, d.DirectIO())
		}
		ours := bytes.Repeat([]byte{0x11}, 8192)
		if err := d.WriteAt(ours, 8192); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(ours))
		if err := d.ReadAt(got, 8192); err != nil || !bytes.Equal(got, ours) {
			t.Fatalf("read back: %v", err)
		}
		theirs := bytes.Repeat([]byte{0x22}, 8192)
		f, err := os.OpenFile(file, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteAt(theirs, 8192)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := d.ReadAt(got, 8192); err != nil {
			t.Fatal(err)
		}
		want := theirs
		if cached {
			want = ours
		}
		if !bytes.Equal(got, want) {
			t.Errorf("BlockPageCache %v: read %#x..., want %#x...", cached, got[0], want[0])
		}
	}
}

// Direct I/O takes any memory and any range: memory that is not aligned
// goes through an aligned buffer (a write's payload sits anywhere in the
// connection's buffer), a range that is not whole sectors as whole
// sectors read, and written back patched (dev_subsector.go), and the two
// see each other's writes.
func TestBlockDeviceDirectAnyMemoryAnyRange(t *testing.T) {
	d, _ := openLoop(t, 4<<20, OpenOptions{})
	if !d.DirectIO() || !fdFlags(t, d.directFD, unixODirect) {
		t.Fatal("the block device is not open with O_DIRECT")
	}
	raw := make([]byte, 3<<20+1)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	odd := raw[1:] // not aligned, and 3 MiB: three bounces
	if err := d.WriteAt(odd, 512); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(odd)+1)
	if err := d.ReadAt(got[1:], 512); err != nil || !bytes.Equal(got[1:], odd) {
		t.Fatalf("unaligned memory: read back differs (%v)", err)
	}
	// A few bytes inside a sector (a read-modify-write), then read
	// back directly with the whole sector around them.
	if err := d.WriteAt([]byte("sub-sector"), 4096+100); err != nil {
		t.Fatal(err)
	}
	sector := make([]byte, 512)
	if err := d.ReadAt(sector, 4096); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(odd[4096-512 : 4096]) // odd starts at byte 512
	copy(want[100:], "sub-sector")
	if !bytes.Equal(sector, want) {
		t.Fatal("a direct read does not see a sub-sector write")
	}
	// A direct write over a sector the page cache holds, then a
	// sub-sector read of it.
	if err := d.WriteAt(bytes.Repeat([]byte{0xee}, 512), 4096); err != nil {
		t.Fatal(err)
	}
	small := make([]byte, 10)
	if err := d.ReadAt(small, 4096+100); err != nil || !bytes.Equal(small, bytes.Repeat([]byte{0xee}, 10)) {
		t.Fatalf("a sub-sector read after a direct write: %x (%v)", small, err)
	}
}

// unixODirect is O_DIRECT as /proc's fdinfo prints flags (octal).
const unixODirect = 0o40000

// fdFlags says whether descriptor fd's open flags include flag.
func fdFlags(t *testing.T, fd int, flag int64) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			return err == nil && n&flag != 0
		}
	}
	return false
}
