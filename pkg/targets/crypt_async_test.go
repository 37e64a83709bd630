package targets

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// newCryptOn builds a crypt target of sectors over dev (a path or URI)
// in set; args has "DEV" where the device goes.
func newCryptOn(t *testing.T, args, dev string, sectors uint64, set *DevSet) *crypt {
	t.Helper()
	canon, err := checkCrypt(strings.Fields(strings.ReplaceAll(args, "DEV", dev)), sectors)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := newCrypt(canon, sectors, set)
	if err != nil {
		t.Fatal(err)
	}
	return tg.(*crypt)
}

// cryptAsyncDone is testkit.Await's result passed through the target's
// AsyncErr, as the table does.
func cryptAsyncDone(t *testing.T, c *crypt, kind AsyncKind, off, n int64, start func(done func(error)) bool) error {
	t.Helper()
	return c.AsyncErr(kind, off, n, testkit.Await(t, start))
}

// cryptRoundTrips writes p asynchronously and reads it back the blocking
// way, then writes it the blocking way and reads it back asynchronously
// into memory that is not aligned: the two paths encrypt and decrypt
// alike (the blocking path is checked against the kernel's vectors).
func cryptRoundTrips(t *testing.T, c *crypt, p []byte, off int64) {
	t.Helper()
	ctx := context.Background()
	n := int64(len(p))
	if err := cryptAsyncDone(t, c, AsyncWrite, off, n, func(done func(error)) bool { return c.WriteAsync(ctx, p, off, done) }); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, n)
	if err := c.ReadAt(ctx, got, off); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("async write, blocking read at %d: %v, equal %v", off, err, bytes.Equal(got, p))
	}
	rev := bytes.Clone(p)
	for i := range rev {
		rev[i] = ^rev[i]
	}
	if err := c.WriteAt(ctx, rev, off, 0); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, n+1)[1:]
	if err := cryptAsyncDone(t, c, AsyncRead, off, n, func(done func(error)) bool { return c.ReadAsync(ctx, got, off, done) }); err != nil || !bytes.Equal(got, rev) {
		t.Fatalf("blocking write, async read at %d: %v, equal %v", off, err, bytes.Equal(got, rev))
	}
}

// A crypt target over a block device read with O_DIRECT takes reads and
// writes asynchronously (AIO), with the same ciphertext as the blocking
// path, for both chains and a 4 KiB crypt sector; a range that is not
// whole crypt sectors, or a write larger than its buffer may be, takes
// the blocking path. Through the page cache it takes none.
func TestCryptAsyncBlockDevice(t *testing.T) {
	loop := aioLoop(t, tempFile(t, 4<<20))
	set := NewDevSet(false)
	defer set.Close()
	p := make([]byte, 64<<10)
	for i := range p {
		p[i] = byte(i*7 + i>>9)
	}
	for _, args := range []string{
		"aes-xts-plain64 " + key256 + " 7 DEV 16",
		"aes-cbc-essiv:sha256 " + key256 + " 0 DEV 8 2 sector_size:4096 iv_large_sectors",
	} {
		c := newCryptOn(t, args, loop, 4096, set)
		if !c.CanAsync() {
			t.Fatalf("%s over a direct block device does not take async requests", args)
		}
		cryptRoundTrips(t, c, p, 8192)
		cryptRoundTrips(t, c, p[:4096], 1<<20)
	}
	c := newCryptOn(t, "aes-xts-plain64 "+key256+" 0 DEV 0", loop, 8192, set)
	ctx := context.Background()
	notStarted := func(error) { t.Error("done of a request not started") }
	if c.ReadAsync(ctx, make([]byte, 512), 100, notStarted) || c.WriteAsync(ctx, make([]byte, 512), 100, notStarted) {
		t.Fatal("a range that is not whole crypt sectors went async")
	}
	if c.WriteAsync(ctx, make([]byte, cryptAsyncMax+512), 0, notStarted) {
		t.Fatal("a write larger than cryptAsyncMax went async")
	}
	cached := NewDevSetWith(false, OpenOptions{BlockPageCache: true})
	defer cached.Close()
	if newCryptOn(t, "aes-xts-plain64 "+key256+" 0 DEV 0", loop, 8192, cached).CanAsync() {
		t.Fatal("crypt over a block device served through the page cache takes async requests")
	}
}

// Over a remote device crypt takes requests asynchronously too. A write
// the device will not take then (its server gone, so no connection) is
// written the blocking way by the goroutine that encrypted it, and its
// error is passed on as the blocking path gave it, not wrapped again.
func TestCryptAsyncRemote(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	set := NewDevSet(false)
	defer set.Close()
	c := newCryptOn(t, "aes-xts-plain64 "+key256+" 0 DEV 8", s.URI("a")+"&timeout=300ms", 2040, set)
	if !c.CanAsync() {
		t.Fatal("crypt over a remote device does not take async requests")
	}
	p := bytes.Repeat([]byte("crypt over a remote leg "), 1024)[:16<<10]
	cryptRoundTrips(t, c, p, 4096)
	if bytes.Contains(m.At(8*512+4096, len(p)), p[:512]) {
		t.Fatal("the remote holds the plaintext")
	}
	s.Stop()
	testkit.WaitFor(t, 10*time.Second, "device down", c.dev.Down)
	ctx := context.Background()
	err := cryptAsyncDone(t, c, AsyncWrite, 0, 4096, func(done func(error)) bool { return c.WriteAsync(ctx, p[:4096], 0, done) })
	if !errors.Is(err, syscall.EIO) || strings.Count(err.Error(), "targets: write") != 1 {
		t.Fatalf("async write with the server down: %v; want EIO, said once as the blocking path says it", err)
	}
}
