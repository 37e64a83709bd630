package targets

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/aio"
)

// openFile opens a fresh file of size bytes in a DevSet under opts. The
// file lies on a disk's filesystem, not tmpfs (whose pages are its data,
// cached whatever the descriptor): the test's temporary directory, or
// /var/tmp; a machine with neither skips the test.
func openFile(t *testing.T, size int64, opts OpenOptions) *Dev {
	t.Helper()
	dir := t.TempDir()
	if onTmpfs(t, dir) {
		var err error
		if dir, err = os.MkdirTemp("/var/tmp", "gdm-test"); err != nil || onTmpfs(t, dir) {
			t.Skipf("no directory on a disk's filesystem here (%v)", err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	s := NewDevSetWith(false, opts)
	t.Cleanup(func() { s.Close() })
	d, err := s.Open(testkit.Sparse(t, dir, "dev", size))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// onTmpfs says whether dir is on tmpfs.
func onTmpfs(t *testing.T, dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Type == unix.TMPFS_MAGIC
}

// roundTrip writes and reads random ranges of d (whole sectors, sub-sector
// pieces, and spans), checking every read and then the whole device
// against a model.
func roundTrip(t *testing.T, d *Dev, seed uint64) {
	t.Helper()
	size := d.Size()
	model := make([]byte, size)
	if err := d.ReadAt(model, 0); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	for i := range 400 {
		off := rng.Int64N(size - 1)
		if i%3 == 0 {
			off -= off % SectorSize
		}
		n := 1 + rng.Int64N(min(size-off, 9000))
		if i%2 == 0 {
			p := make([]byte, n)
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			if err := d.WriteAt(p, off); err != nil {
				t.Fatalf("write %d+%d: %v", off, n, err)
			}
			copy(model[off:], p)
			continue
		}
		got := make([]byte, n)
		if err := d.ReadAt(got, off); err != nil {
			t.Fatalf("read %d+%d: %v", off, n, err)
		}
		if !bytes.Equal(got, model[off:off+n]) {
			t.Fatalf("read %d+%d differs from what was written", off, n)
		}
	}
	whole := make([]byte, size)
	if err := d.ReadAt(whole, 0); err != nil || !bytes.Equal(whole, model) {
		t.Fatalf("the device differs from the model (%v)", err)
	}
}

// With FileDirect a regular file is read and written with O_DIRECT, in
// its filesystem's unit, any range round-trips, whole blocks go through
// AIO, and none of the file is left in the page cache; without it the
// file is served through the page cache, as before (and the same I/O
// leaves pages cached: the measure works).
func TestFileDirect(t *testing.T) {
	const size = 4 << 20
	cached := openFile(t, size, OpenOptions{})
	if cached.DirectIO() {
		t.Fatal("a file is read with O_DIRECT without FileDirect")
	}
	roundTrip(t, cached, 1)
	if n := cachedPages(t, cached.realPath, size, false); n == 0 {
		t.Fatal("no page of a file served through the page cache is cached: the measure is wrong")
	}

	d := openFile(t, size, OpenOptions{FileDirect: true})
	if !d.DirectIO() || !fdFlags(t, d.directFD, unixODirect) {
		t.Fatal("FileDirect: the file is not open with O_DIRECT")
	}
	if d.dioBlock < SectorSize || d.dioBlock&(d.dioBlock-1) != 0 {
		t.Fatalf("FileDirect: unit %d", d.dioBlock)
	}
	if d.LogicalBlockSize() != SectorSize {
		t.Fatalf("FileDirect changed the file's logical block size to %d", d.LogicalBlockSize())
	}
	roundTrip(t, d, 2)
	if n := cachedPages(t, d.realPath, size, false); n != 0 {
		t.Errorf("FileDirect: %d pages of the file cached", n)
	}
	if aio.Shared() == nil {
		t.Log("no Linux AIO here: the asynchronous path not tried")
		return
	}
	before := aio.SharedStats().Submitted
	p := bytes.Repeat([]byte{0x5a}, 8192)
	if err := asyncDone(t, d, AsyncWrite, 65536, func(done func(error)) bool { return d.directAsync(true, p, 65536, done) }); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(p))
	if err := asyncDone(t, d, AsyncRead, 65536, func(done func(error)) bool { return d.directAsync(false, got, 65536, done) }); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("AIO round trip: %v", err)
	}
	if aio.SharedStats().Submitted < before+2 {
		t.Error("FileDirect: whole blocks did not go through AIO")
	}
}

// A file whose size is not whole units of O_DIRECT: its last, short unit
// goes through the page cache (a direct read of it would be short, a
// whole-unit write would grow the file), and everything before it
// directly. The unit is set to 4 KiB here, as a filesystem on a 4 KiB
// disk has it, so that the test does not depend on this machine's disk.
func TestFileDirectShortLastUnit(t *testing.T) {
	const size = 1<<20 + 1536
	d := openFile(t, size, OpenOptions{FileDirect: true})
	if !d.DirectIO() {
		t.Fatal("FileDirect: not direct")
	}
	d.dioBlock = 4096
	if d.directOK(1<<20, 4096) || d.directOK(1<<20, 512) || !d.directOK(1<<20-4096, 4096) || d.directOK(512, 512) {
		t.Fatal("directOK takes a range that is not whole units before the file's last whole unit")
	}
	roundTrip(t, d, 3)
	tail := bytes.Repeat([]byte{0x77}, 1536)
	if err := d.WriteAt(tail, 1<<20); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil || st.Size != size {
		t.Fatalf("the file's size is %d after writing its tail (%v), want %d", st.Size, err, size)
	}
	got := make([]byte, 1536)
	if err := d.ReadAt(got, 1<<20); err != nil || !bytes.Equal(got, tail) {
		t.Fatalf("the tail: %v", err)
	}
}
