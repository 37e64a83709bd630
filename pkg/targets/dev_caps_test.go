package targets

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
	"golang.org/x/sys/unix"
)

// fakeSysBlock points sysDevBlock, for the test, at a tree laid out as
// sysfs lays out a disk and its first partition: /sys/dev/block/M:m links
// to the disk's directory, which holds queue/; M:m+1 links to the
// partition's, inside the disk's, which has no queue of its own. The
// disk's queue says discard and zeroes (discard_max_bytes,
// write_zeroes_max_bytes). A real device's own queue cannot be changed
// back once its discard_max_bytes is 0 (the kernel then refuses any other
// value), so the tests fake it rather than touch a loop device others
// may attach later.
func fakeSysBlock(t *testing.T, rdev uint64, discard, zeroes string) {
	t.Helper()
	root := t.TempDir()
	disk := filepath.Join(root, "devices", "disk")
	mustMkdir(t, filepath.Join(disk, "queue"))
	mustMkdir(t, filepath.Join(disk, "part1"))
	for name, v := range map[string]string{"discard_max_bytes": discard, "write_zeroes_max_bytes": zeroes} {
		if err := os.WriteFile(filepath.Join(disk, "queue", name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	byNum := filepath.Join(root, "dev", "block")
	mustMkdir(t, byNum)
	major, minor := unix.Major(rdev), unix.Minor(rdev)
	for target, m := range map[string]uint32{disk: minor, filepath.Join(disk, "part1"): minor + 1} {
		if err := os.Symlink(target, filepath.Join(byNum, fmt.Sprintf("%d:%d", major, m))); err != nil {
			t.Fatal(err)
		}
	}
	old := sysDevBlock
	sysDevBlock = byNum
	t.Cleanup(func() { sysDevBlock = old })
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// A disk's queue limits are read from its queue directory, and a
// partition's from its disk's; a device sysfs does not list is unknown.
func TestQueueLimitOfDiskAndPartition(t *testing.T) {
	rdev := unix.Mkdev(250, 16)
	fakeSysBlock(t, rdev, "0", "1048576")
	if got := queueLimit(rdev, "discard_max_bytes"); got != 0 {
		t.Errorf("disk discard_max_bytes %d, want 0", got)
	}
	if got := queueLimit(unix.Mkdev(250, 17), "write_zeroes_max_bytes"); got != 1048576 {
		t.Errorf("partition write_zeroes_max_bytes %d, want its disk's 1048576", got)
	}
	if got := queueLimit(unix.Mkdev(250, 99), "discard_max_bytes"); got != -1 {
		t.Errorf("unlisted device: %d, want -1 (unknown)", got)
	}
}

// A block device whose queue takes no discards (discard_max_bytes 0) is a
// device without discard, and a trim on it (which only log-writes sends
// there) leaves its data alone: gdm's punched hole would be a
// write-zeroes, which dm never sends for a discard. Write-zeroes is read
// on its own. A device sysfs cannot answer for is taken as capable.
func TestBlockDeviceWithoutDiscard(t *testing.T) {
	loop := loopPath(t, 1<<20)
	var st unix.Stat_t
	if err := unix.Stat(loop, &st); err != nil {
		t.Fatal(err)
	}
	fakeSysBlock(t, st.Rdev, "0", "33554432")
	set := NewDevSet(false)
	t.Cleanup(func() { set.Close() }) // before the loop device goes
	d, err := set.Open(loop)
	if err != nil {
		t.Fatal(err)
	}
	if d.SupportsDiscard() || !d.SupportsWriteZeroes() {
		t.Fatalf("discard %v, write-zeroes %v; want false, true", d.SupportsDiscard(), d.SupportsWriteZeroes())
	}
	data := bytes.Repeat([]byte{0xa5}, 64<<10)
	if err := d.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Trim(0, 64<<10); err != nil {
		t.Fatalf("trim: %v", err)
	}
	got := make([]byte, len(data))
	if err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Error("a trim on a device without discard changed its data")
	}
	sysDevBlock = t.TempDir() // lists nothing
	other := NewDevSet(false)
	t.Cleanup(func() { other.Close() })
	d2, err := other.Open(loop)
	if err != nil {
		t.Fatal(err)
	}
	if !d2.SupportsDiscard() || !d2.SupportsWriteZeroes() {
		t.Error("a device sysfs does not list is taken as without discard or write-zeroes")
	}
}

// The kernel's own answer for a fresh loop device over a file: it takes
// both (loop punches holes in its file), and a regular file opened
// directly does too.
func TestLoopAndFileCapable(t *testing.T) {
	for _, path := range []string{loopPath(t, 1<<20), tempFile(t, 1<<20)} {
		set := NewDevSet(false)
		t.Cleanup(func() { set.Close() })
		d, err := set.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if !d.SupportsDiscard() || !d.SupportsWriteZeroes() {
			t.Errorf("%s: discard %v, write-zeroes %v; want both", path, d.SupportsDiscard(), d.SupportsWriteZeroes())
		}
	}
}

// A remote export takes what its handshake advertised: one without TRIM
// or WRITE_ZEROES is a device without discard or write-zeroes.
func TestRemoteDevCaps(t *testing.T) {
	full, bare := nbdtest.NewMem(1<<20), nbdtest.NewMem(1<<20)
	bare.SetCaps(false, false)
	trimOnly := nbdtest.NewMem(1 << 20)
	trimOnly.SetCaps(true, false)
	srv := nbdtest.Start(t, nbdtest.Exports{"full": full, "bare": bare, "trim": trimOnly})
	set := NewDevSet(false)
	t.Cleanup(func() { set.Close() })
	for name, want := range map[string][2]bool{"full": {true, true}, "bare": {false, false}, "trim": {true, false}} {
		d, err := set.Open(srv.URI(name))
		if err != nil {
			t.Fatal(err)
		}
		if got := [2]bool{d.SupportsDiscard(), d.SupportsWriteZeroes()}; got != want {
			t.Errorf("%s: discard, write-zeroes %v, want %v", name, got, want)
		}
	}
}
