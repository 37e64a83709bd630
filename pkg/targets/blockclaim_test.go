package targets

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// exclusiveOpen opens path with O_EXCL as mount, mkfs or dmsetup would,
// and says whether the kernel let it.
func exclusiveOpen(t *testing.T, path string) (fd int, ok bool) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EBUSY) {
		return -1, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return fd, true
}

// A block device in a table is held exclusively, as dm holds its tables'
// devices: while any table of this process uses it, another exclusive
// open (a mount, say) is refused; two tables share the one hold (a reload
// opens the device again while the old table still has it); the hold goes
// with the last table.
func TestBlockDeviceClaimedWhileUsed(t *testing.T) {
	loop := loopPath(t, 1<<20)
	a, b := NewDevSet(false), NewDevSet(true)
	defer a.Close()
	defer b.Close()
	if _, err := a.Open(loop); err != nil {
		t.Fatal(err)
	}
	if fd, ok := exclusiveOpen(t, loop); ok {
		unix.Close(fd)
		t.Fatalf("%s opened exclusively while a table uses it", loop)
	}
	if _, err := b.Open(loop); err != nil {
		t.Fatalf("a second table of the same process: %v", err)
	}
	a.Close()
	if fd, ok := exclusiveOpen(t, loop); ok {
		unix.Close(fd)
		t.Fatalf("%s opened exclusively while the second table still uses it", loop)
	}
	b.Close()
	fd, ok := exclusiveOpen(t, loop)
	if !ok {
		t.Fatalf("%s still held after every table using it closed", loop)
	}
	unix.Close(fd)
	if n := len(blockClaims.held); n != 0 {
		t.Fatalf("%d claims left", n)
	}
}

// A block device that something else holds exclusively (a mounted
// filesystem, another dm) is refused with ErrDeviceBusy naming it, and
// nothing of the failed open stays behind: once the other holder lets go,
// the device opens.
func TestBlockDeviceHeldElsewhereRefused(t *testing.T) {
	loop := loopPath(t, 1<<20)
	fd, ok := exclusiveOpen(t, loop)
	if !ok {
		t.Fatalf("%s busy before the test", loop)
	}
	s := NewDevSet(false)
	defer s.Close()
	_, err := s.Open(loop)
	if !errors.Is(err, ErrDeviceBusy) {
		unix.Close(fd)
		t.Fatalf("open of a device held elsewhere: %v, want ErrDeviceBusy", err)
	}
	t.Log(err)
	if n := len(blockClaims.held); n != 0 {
		t.Fatalf("%d claims left by a failed open", n)
	}
	unix.Close(fd)
	if _, err := s.Open(loop); err != nil {
		t.Fatalf("after the other holder closed: %v", err)
	}
}
