package targets

import (
	"bytes"
	"context"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// overLoop builds a target of 2048 sectors with newFn over a fresh loop
// device, from its line's args after the device path.
func overLoop(t *testing.T, check func([]string, uint64) ([]string, error), newFn func([]string, uint64, *DevSet) (Target, error), args ...string) Target {
	t.Helper()
	loop := aioLoop(t, tempFile(t, 2<<20))
	canon, err := check(append([]string{loop}, args...), 2048)
	if err != nil {
		t.Fatal(err)
	}
	set := NewDevSet(false)
	t.Cleanup(func() { set.Close() })
	tg, err := newFn(canon, 2048, set)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// asyncRoundTrip writes 8 KiB at off asynchronously and reads it back
// asynchronously, both through the target's AsyncErr.
func asyncRoundTrip(t *testing.T, at AsyncTarget, off int64) {
	t.Helper()
	ctx := context.Background()
	data := bytes.Repeat([]byte("faults!!"), 1024)
	if err := at.AsyncErr(AsyncWrite, off, 8192, testkit.Await(t, func(done func(error)) bool { return at.WriteAsync(ctx, data, off, done) })); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8192)
	if err := at.AsyncErr(AsyncRead, off, 8192, testkit.Await(t, func(done func(error)) bool { return at.ReadAsync(ctx, got, off, done) })); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back at %d: %v, equal %v", off, err, bytes.Equal(got, data))
	}
}

// declines checks that neither a read nor a write of 8 KiB at off is
// taken asynchronously.
func declines(t *testing.T, at AsyncTarget, off int64, why string) {
	t.Helper()
	ctx := context.Background()
	never := func(error) { t.Errorf("done of a request not started (%s)", why) }
	if at.ReadAsync(ctx, make([]byte, 8192), off, never) || at.WriteAsync(ctx, make([]byte, 8192), off, never) {
		t.Fatalf("a request went async %s", why)
	}
}

// flakey over a direct block device is linear in its up interval, AIO
// included, at the line's offset; in the down interval it declines, so
// that the blocking path injects the fault.
func TestFlakeyAsync(t *testing.T) {
	f := overLoop(t, checkFlakey, newFlakey, "16", "3600", "0").(*flakey)
	if !f.CanAsync() {
		t.Fatal("flakey over a direct block device does not take async requests")
	}
	asyncRoundTrip(t, f, 4096)
	got := make([]byte, 8192)
	if err := f.dev.ReadAt(got, 16*SectorSize+4096); err != nil || !bytes.Equal(got, bytes.Repeat([]byte("faults!!"), 1024)) {
		t.Fatalf("the write is not at the line's offset: %v", err)
	}
	down := overLoop(t, checkFlakey, newFlakey, "0", "0", "3600", "1", "error_writes").(*flakey)
	declines(t, down, 4096, "in the down interval")
}

// dust over a direct block device reads and writes asynchronously where
// no listed block judges the range (or in bypass mode); a range a listed
// block judges goes the blocking way, which fails or writes it piece by
// piece.
func TestDustAsync(t *testing.T) {
	d := overLoop(t, checkDust, newDust, "0", "4096").(*dust)
	if !d.CanAsync() {
		t.Fatal("dust over a direct block device does not take async requests")
	}
	msg(t, d, "addbadblock", "5")
	asyncRoundTrip(t, d, 5*4096) // bypass mode: block 5 is not judged
	msg(t, d, "enable")
	declines(t, d, 4*4096, "over a listed block")
	asyncRoundTrip(t, d, 8*4096)
	if d.faults.Requests[FaultReadError].Load() != 0 {
		t.Fatal("a declined request counted a fault")
	}
}
