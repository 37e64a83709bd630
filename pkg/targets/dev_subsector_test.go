package targets

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gdm-project/gdm/pkg/aio"
)

// cachedPages counts the pages of the file or block device at path that
// are in the page cache: it mapped, and mincore asked. A block device's
// cache is dropped first when drop is set.
func cachedPages(t *testing.T, path string, size int64, drop bool) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if drop {
		if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0); err != nil {
			t.Fatalf("BLKFLSBUF: %v", err)
		}
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (size+int64(os.Getpagesize())-1)/int64(os.Getpagesize()))
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// gdm keeps no page cache of a block device it reads with O_DIRECT: an
// AIO write does not drop the cached pages of its range when it
// completes, so a page cached while one was in flight would keep the
// old data for every later read that goes through the cache. Sub-sector
// reads and writes (each read-ahead a whole window through the page
// cache before) and a snapshot's gathered I/O of unaligned buffers
// (preadv and pwritev on the cached descriptor before) leave no page of
// the device cached.
func TestBlockDeviceKeepsNoPageCache(t *testing.T) {
	const size = 4 << 20
	d, _ := openLoop(t, size, OpenOptions{})
	if !d.DirectIO() {
		t.Fatal("the block device is not open with O_DIRECT")
	}
	if n := cachedPages(t, d.path, size, true); n != 0 {
		t.Fatalf("%d pages cached after BLKFLSBUF", n)
	}
	small := make([]byte, 10)
	if err := d.ReadAt(small, 1<<20+100); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteAt([]byte("sub-sector"), 2<<20+700); err != nil {
		t.Fatal(err)
	}
	odd := make([]byte, 4097)
	if err := gathered(d, []cowIO{{at: 3 << 20, p: odd[1:]}, {at: 3<<20 + 4096, p: make([]byte, 4096)}}, true); err != nil {
		t.Fatal(err)
	}
	if err := gathered(d, []cowIO{{at: 3 << 20, p: odd[1:]}, {at: 3<<20 + 4096, p: make([]byte, 4096)}}, false); err != nil {
		t.Fatal(err)
	}
	if n := cachedPages(t, d.path, size, false); n != 0 {
		t.Errorf("%d pages of the device cached after sub-sector and gathered I/O", n)
	}
}

// Any range round-trips on a direct device, against a model: ranges that
// start and end inside sectors, span several, or lie within one.
func TestBlockDeviceSubSectorRanges(t *testing.T) {
	d, _ := openLoop(t, 1<<20, OpenOptions{})
	roundTrip(t, d, 1)
}

// Writes to different bytes of one sector do not overlap, so NBD lets a
// client have them in flight at once, and each must land: the
// read-modify-write of the sector is one at a time.
func TestBlockDeviceSubSectorWritesToOneSectorAllLand(t *testing.T) {
	d, _ := openLoop(t, 1<<20, OpenOptions{})
	const writers, rounds = 64, 20
	for r := range rounds {
		sector := int64(r) * 4096
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				p := bytes.Repeat([]byte{byte(r + w + 1)}, SectorSize/writers)
				errs <- d.WriteAt(p, sector+int64(w*len(p)))
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got := make([]byte, SectorSize)
		if err := d.ReadAt(got, sector); err != nil {
			t.Fatal(err)
		}
		for w := range writers {
			part := got[w*SectorSize/writers : (w+1)*SectorSize/writers]
			if !bytes.Equal(part, bytes.Repeat([]byte{byte(r + w + 1)}, len(part))) {
				t.Fatalf("round %d: writer %d's bytes were lost: %x", r, w, part)
			}
		}
	}
}

// A write past the end of a block device that shrank under the table is
// ErrShortIO both ways (EIO to the client, as dm's bio past the end
// fails), where the kernel says ENOSPC; one that straddles the end is a
// short count, the same error.
func TestBlockDeviceWritePastShrunkEnd(t *testing.T) {
	d, file := openLoop(t, 1<<20, OpenOptions{})
	if err := os.Truncate(file, 512<<10); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("losetup", "-c", d.path).CombinedOutput(); err != nil {
		t.Fatalf("losetup -c: %v: %s", err, out)
	}
	p := make([]byte, 4096)
	if err := d.WriteAt(p, 768<<10); !errors.Is(err, ErrShortIO) {
		t.Errorf("blocking write past the end: %v, want ErrShortIO", err)
	}
	if aio.Shared() == nil {
		return
	}
	if err := asyncDone(t, d, AsyncWrite, 768<<10, func(done func(error)) bool { return d.directAsync(true, p, 768<<10, done) }); !errors.Is(err, ErrShortIO) {
		t.Errorf("asynchronous write past the end: %v, want ErrShortIO", err)
	}
}
