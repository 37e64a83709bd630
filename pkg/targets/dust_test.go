package targets

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// newTestDust builds a dust target of sectors over a fresh file of
// fileBytes, from the line's args after the device path.
func newTestDust(t *testing.T, fileBytes int64, sectors uint64, offset, blksz string) (*dust, string) {
	t.Helper()
	p := tempFile(t, fileBytes)
	args, err := checkDust([]string{p, offset, blksz}, sectors)
	if err != nil {
		t.Fatal(err)
	}
	s := NewDevSet(false)
	t.Cleanup(func() { s.Close() })
	tg, err := newDust(args, sectors, s)
	if err != nil {
		t.Fatal(err)
	}
	return tg.(*dust), p
}

// msg sends a message that must succeed and returns its reply.
func msg(t *testing.T, d *dust, words ...string) string {
	t.Helper()
	r, err := d.Message(context.Background(), words)
	if err != nil {
		t.Fatalf("message %q: %v", words, err)
	}
	return r
}

// msgFails sends a message that must fail with EINVAL and dm's text.
func msgFails(t *testing.T, d *dust, want string, words ...string) {
	t.Helper()
	r, err := d.Message(context.Background(), words)
	if !errors.Is(err, syscall.EINVAL) || err == nil || !strings.Contains(err.Error(), want) || r != "" {
		t.Fatalf("message %q: %q, %v; want EINVAL saying %q", words, r, err, want)
	}
}

// The constructor's checks, in dm's order and with dm's words.
func TestDustCheck(t *testing.T) {
	for _, c := range []struct {
		args    []string
		sectors uint64
		want    string // canonical args, or the error's text
		err     error
	}{
		{[]string{"d", "0"}, 8, "dust takes 3", ErrArgCount},
		{[]string{"d", "0", "x"}, 8, "Invalid block size parameter", ErrBlockSize},
		{[]string{"d", "0", "0"}, 8, "Invalid block size parameter", ErrBlockSize},
		{[]string{"d", "0", "4294967296"}, 1 << 40, "Invalid block size parameter", ErrBlockSize},
		{[]string{"d", "0", "256"}, 8, "Block size must be at least 512", ErrBlockSize},
		{[]string{"d", "0", "1536"}, 8, "Block size must be a power of 2", ErrBlockSize},
		{[]string{"d", "0", "8192"}, 8, "Block size is too large", ErrBlockSize}, // larger than the target
		{[]string{"d", "0", "2147483648"}, 1 << 40, "Block size is too large", ErrBlockSize},
		{[]string{"d", "-1", "512"}, 8, "offset", ErrNegative},
		{[]string{"", "0", "512"}, 8, "empty device path", ErrEmptyPath},
		{[]string{"d", "0042", "+4096"}, 8, "d 42 4096", nil},
		{[]string{"d", "0", "1073741824"}, 1 << 40, "d 0 1073741824", nil},
	} {
		got, err := checkDust(c.args, c.sectors)
		if c.err == nil {
			if err != nil || strings.Join(got, " ") != c.want {
				t.Errorf("checkDust(%q) = %q, %v; want %q", c.args, got, err, c.want)
			}
			continue
		}
		if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("checkDust(%q): %v; want %v saying %q", c.args, err, c.err, c.want)
		}
	}
}

// dmsetup status as the documentation shows it: "bypass verbose" at
// first, "fail_read_on_bad_block" after enable, "quiet" after one quiet
// message and "verbose" again after a second; TABLE is left to the table.
func TestDustStatusDocExample(t *testing.T) {
	d, p := newTestDust(t, 1<<20, 2048, "0", "512")
	for _, step := range []struct{ words, want string }{
		{"", "bypass verbose"},
		{"enable", "fail_read_on_bad_block verbose"},
		{"quiet", "fail_read_on_bad_block quiet"},
		{"quiet", "fail_read_on_bad_block verbose"},
		{"disable", "bypass verbose"},
	} {
		if step.words != "" {
			if r := msg(t, d, step.words); r != "" {
				t.Fatalf("%s replied %q, want nothing", step.words, r)
			}
		}
		if got := d.Status(StatusInfo); got != p+" "+step.want {
			t.Fatalf("after %q: status %q, want %q", step.words, got, p+" "+step.want)
		}
	}
	if got := d.Status(StatusTable); got != "" {
		t.Fatalf("TABLE status %q", got)
	}
	if _, ok := Target(d).(FaultCounter); !ok {
		t.Fatal("dust is not a FaultCounter")
	}
}

// pipe is a non-blocking pipe for SpliceTo, closed at the test's end.
func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// The documentation's walk: bad blocks 60, 67 and 72 are read fine in
// bypass mode; enabled, reading block 67 fails with EIO (and so does a
// splice of it, and a read that only touches it), its neighbours read.
func TestDustReadFailsOnBadBlockWhenEnabled(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestDust(t, 1<<20, 2048, "0", "512")
	for _, b := range []string{"60", "67", "72"} {
		msg(t, d, "addbadblock", b)
	}
	buf := make([]byte, 128*512)
	if err := d.ReadAt(ctx, buf, 0); err != nil {
		t.Fatalf("bypass: read of 128 sectors: %v", err)
	}
	msg(t, d, "enable")
	if err := d.ReadAt(ctx, buf[:512], 67*512); !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrBadBlock) {
		t.Fatalf("enabled: read of block 67: %v, want EIO", err)
	}
	if err := d.ReadAt(ctx, buf[:1024], 66*512+256); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read ending inside block 67: %v, want EIO", err)
	}
	for _, b := range []int64{66, 68, 127} {
		if err := d.ReadAt(ctx, buf[:512], b*512); err != nil {
			t.Fatalf("read of good block %d: %v", b, err)
		}
	}
	_, w := pipe(t)
	if err := d.SpliceTo(ctx, w, 72*512, 512); !errors.Is(err, syscall.EIO) {
		t.Fatalf("splice of block 72: %v, want EIO", err)
	}
	if err := d.SpliceTo(ctx, w, 73*512, 512); err != nil {
		t.Fatalf("splice of block 73: %v", err)
	}
	if n := d.Faults().Requests[FaultReadError].Load(); n != 3 {
		t.Fatalf("read_error faults %d, want 3", n)
	}
}

// Enabled, writing the bad blocks takes them off the list ("remaps"
// them) and writes the data; in bypass mode a write leaves the list alone,
// as dm's map only consults the list when enabled.
func TestDustWriteRemovesBadBlocks(t *testing.T) {
	ctx := context.Background()
	d, _ := newTestDust(t, 1<<20, 2048, "0", "512")
	for _, b := range []string{"60", "67", "72", "200"} {
		msg(t, d, "addbadblock", b)
	}
	data := bytes.Repeat([]byte{0xa5}, 128*512)
	if err := d.WriteAt(ctx, data, 0, 0); err != nil {
		t.Fatal(err)
	}
	if got := msg(t, d, "countbadblocks"); got != "countbadblocks: 4 badblock(s) found" {
		t.Fatalf("after a bypass write: %q", got)
	}
	msg(t, d, "enable")
	if err := d.WriteAt(ctx, data, 0, FUA); err != nil {
		t.Fatal(err)
	}
	if got := msg(t, d, "listbadblocks"); got != "200\n" {
		t.Fatalf("after an enabled write of blocks 0-127: list %q, want only 200", got)
	}
	back := make([]byte, len(data))
	if err := d.ReadAt(ctx, back, 0); err != nil || !bytes.Equal(back, data) {
		t.Fatalf("read back: %v (equal %v)", err, bytes.Equal(back, data))
	}
	if err := d.Zero(ctx, 200*512, 512, ZeroFlags{}); err != nil {
		t.Fatal(err)
	}
	msg(t, d, "addbadblock", "300")
	if err := d.Trim(ctx, 300*512, 1024); err != nil {
		t.Fatal(err)
	}
	if got := msg(t, d, "countbadblocks"); got != "countbadblocks: 0 badblock(s) found" {
		t.Fatalf("after zero and trim: %q", got)
	}
}

// A discard is one bio in dm, never split at the block size (dm cuts
// discards at target boundaries only), so dust_map judges it by the block
// of its first sector alone: listed blocks further in stay listed, and a
// first block with writes still to fail fails the whole discard, nothing
// of it done.
func TestDustDiscardJudgedByItsFirstBlock(t *testing.T) {
	ctx := context.Background()
	d, path := newTestDust(t, 1<<20, 2048, "0", "4096")
	data := bytes.Repeat([]byte{0xa5}, 1<<20)
	if err := d.WriteAt(ctx, data, 0, 0); err != nil {
		t.Fatal(err)
	}
	msg(t, d, "addbadblock", "3")
	msg(t, d, "addbadblock", "4", "1")
	msg(t, d, "enable")
	// Blocks 2-5: judged by block 2, not listed; 3 and 4 stay listed.
	if err := d.Trim(ctx, 2*4096, 4*4096); err != nil {
		t.Fatalf("discard of blocks 2-5: %v", err)
	}
	if got := msg(t, d, "listbadblocks"); got != "3\n4\n" {
		t.Fatalf("list after discarding blocks 2-5: %q, want 3 and 4 still listed", got)
	}
	// Blocks 4-7: block 4 fails its one write; nothing is discarded.
	if err := d.Trim(ctx, 4*4096, 4*4096); !errors.Is(err, syscall.EIO) {
		t.Fatalf("discard of blocks 4-7, block 4 failing one write: %v, want EIO", err)
	}
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk[6*4096:8*4096], data[6*4096:8*4096]) {
		t.Fatal("a failed discard changed the device (blocks 6-7)")
	}
	// Again: block 4 is remapped (leaves the list) and the range discarded.
	if err := d.Trim(ctx, 4*4096, 4*4096); err != nil {
		t.Fatalf("second discard of blocks 4-7: %v", err)
	}
	if got := msg(t, d, "listbadblocks"); got != "3\n" {
		t.Fatalf("list after the second discard: %q, want 3", got)
	}
	if n := d.Faults().Requests[FaultWriteError].Load(); n != 1 {
		t.Fatalf("write_error faults %d, want 1", n)
	}
}
