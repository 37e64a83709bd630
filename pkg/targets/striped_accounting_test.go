package targets

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// eventStripes builds `striped` over legs (a <dev> <offset> pair each, 8
// sector chunks, 1024 sectors a leg) with a set whose events it counts.
func eventStripes(t *testing.T, legs ...string) (*striped, *atomic.Int64) {
	t.Helper()
	set := NewDevSet(false)
	t.Cleanup(func() { set.Close() })
	events := new(atomic.Int64)
	set.SetEventFunc(func() { events.Add(1) })
	n := uint64(len(legs) / 2)
	args, err := checkStriped(append([]string{fmt.Sprint(n), "8"}, legs...), n*1024)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := newStriped(args, n*1024, set)
	if err != nil {
		t.Fatal(err)
	}
	return tg.(*striped), events
}

// dm finds the stripes of the failed bio's device by its device number,
// and dm_get_device opens a device named twice (two paths to one node) as
// one: an error on one spelling turns the legs of both D. gdm matched the
// opened path, and left the other spelling's leg A.
func TestStripedTwoSpellingsOfOneFileFailTogether(t *testing.T) {
	shared, other := tempFile(t, 1<<20), tempFile(t, 1<<20)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(shared, link); err != nil {
		t.Fatal(err)
	}
	s, _ := eventStripes(t, shared, "0", other, "0", link, "1024")
	if s.legs[0].dev == s.legs[2].dev {
		t.Fatal("the set opened both spellings as one device; the test needs two")
	}
	if err := os.Truncate(shared, 1024*512); err != nil { // leg 2's chunks are past the end
		t.Fatal(err)
	}
	if err := s.ReadAt(context.Background(), make([]byte, 4096), 2*4096); err == nil {
		t.Fatal("a read past the truncated file succeeded")
	}
	if st := s.Status(StatusInfo); !strings.HasSuffix(st, " 1 DAD") {
		t.Fatalf("status %q, want ...1 DAD: the file's two spellings are one device", st)
	}
}

// Each counted error raises an event while its device's count is below
// dm's DM_IO_ERROR_THRESHOLD (15): 14 of them, then none for that device;
// another device's errors raise their own. EOPNOTSUPP, no error of dm's,
// raises none. gdm's striped raised no event at all.
func TestStripedErrorEventsUpToTheThreshold(t *testing.T) {
	a, b := tempFile(t, 1<<20), tempFile(t, 1<<20)
	s, events := eventStripes(t, a, "0", b, "0")
	for _, f := range []string{a, b} {
		if err := os.Truncate(f, 0); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for i := range 20 {
		if err := s.ReadAt(ctx, make([]byte, 512), 0); err == nil {
			t.Fatalf("read %d past the truncated leg 0 succeeded", i)
		}
	}
	if n := events.Load(); n != 14 {
		t.Fatalf("%d events for 20 errors on one device, want 14", n)
	}
	s.count(1, fmt.Errorf("a fast zero: %w", syscall.EOPNOTSUPP))
	if n := events.Load(); n != 14 {
		t.Fatalf("EOPNOTSUPP raised an event (%d events, want 14)", n)
	}
	if err := s.ReadAt(ctx, make([]byte, 512), 4096); err == nil {
		t.Fatal("a read past the truncated leg 1 succeeded")
	}
	if n := events.Load(); n != 15 {
		t.Fatalf("%d events after the other device's first error, want 15", n)
	}
	if st := s.Status(StatusInfo); !strings.HasSuffix(st, " 1 DD") {
		t.Fatalf("status %q, want ...1 DD", st)
	}
}

// A failed flush counts once per leg on the device it failed on, as dm's
// flush clones, one a stripe, each fail; EOPNOTSUPP counts against none.
func TestStripedFlushFailedCountsPerLeg(t *testing.T) {
	shared, other := tempFile(t, 1<<20), tempFile(t, 1<<20)
	s, events := eventStripes(t, shared, "0", other, "0", shared, "1024")
	s.FlushFailed(s.legs[1].dev, fmt.Errorf("no flush here: %w", syscall.EOPNOTSUPP))
	if st := s.Status(StatusInfo); !strings.HasSuffix(st, " 1 AAA") || events.Load() != 0 {
		t.Fatalf("after a flush failed with EOPNOTSUPP: %q, %d events; want ...1 AAA and none", st, events.Load())
	}
	s.FlushFailed(s.legs[0].dev, syscall.EIO)
	if st := s.Status(StatusInfo); !strings.HasSuffix(st, " 1 DAD") {
		t.Fatalf("after a flush failed on the shared file: %q, want ...1 DAD", st)
	}
	if n := events.Load(); n != 2 {
		t.Fatalf("%d events for a flush failed under two legs, want 2", n)
	}
	for i, want := range []uint64{1, 0, 1} {
		if got := s.legs[i].stats.Errors.Load(); got != want {
			t.Errorf("leg %d: %d errors, want %d (its own flush's)", i, got, want)
		}
	}
}
