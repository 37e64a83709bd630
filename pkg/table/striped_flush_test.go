package table

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// flushStripes makes a live device of `striped 3 8` over an export (leg
// 0), a file (leg 1) and the same export by another spelling (leg 2, at
// sector 128), and returns it with the export. dm sends a client's flush
// to each stripe (num_flush_bios is the stripe count) and its end_io
// counts a failed one against every stripe on that stripe's device.
func flushStripes(t *testing.T) (*Device, *nbdtest.Mem) {
	t.Helper()
	m := nbdtest.NewMem(1 << 20)
	srv := nbdtest.Start(t, nbdtest.Exports{"a": m})
	other := "nbd+unix:///a?socket=" + filepath.Dir(srv.Path) + "/./" + filepath.Base(srv.Path)
	file := testkit.Sparse(t, t.TempDir(), "f.img", 1<<20)
	d := newLiveDevice(t, "0 384 striped 3 8 "+srv.URI("a")+" 0 "+file+" 0 "+other+" 128")
	t.Cleanup(func() { d.Close() })
	t.Cleanup(func() { m.FailFlush(0) }) // the closes flush: let them
	return d, m
}

// health is the A/D word of the live striped target's status.
func health(t *testing.T, d *Device) string {
	t.Helper()
	st := d.live.Load().Status()
	f := strings.Fields(st[0])
	return f[len(f)-1]
}

// A client's FLUSH that fails on a leg's device turns every leg on that
// device D and raises an event per failed stripe flush (the export holds
// two legs: two flushes, two errors); the request fails. gdm counted no
// flush error at all.
func TestStripedFailedFlushCountsAgainstItsLegs(t *testing.T) {
	d, m := flushStripes(t)
	ctx := context.Background()
	must(t, d.Flush(ctx))
	if h := health(t, d); h != "AAA" {
		t.Fatalf("after a flush that succeeded: %s, want AAA", h)
	}
	before, _ := d.EventWait()
	m.FailFlush(syscall.EIO)
	if err := d.Flush(ctx); err == nil {
		t.Fatal("a flush that failed on the export succeeded")
	}
	if h := health(t, d); h != "DAD" {
		t.Fatalf("after a flush failed on the export under legs 0 and 2: %s, want DAD as dm", h)
	}
	if after, _ := d.EventWait(); after-before != 2 {
		t.Fatalf("%d events for a flush failed on two stripes, want 2", after-before)
	}
}

// The table's own flushes (a client's disconnect, suspend, a swap) are no
// client's FLUSH: dm sends no flush bio through the targets then, so their
// failure counts against no leg. Nor does a flush the caller gave up on:
// its context's end is not the device's failure.
func TestStripedFlushFailuresThatAreNoLegs(t *testing.T) {
	d, m := flushStripes(t)
	m.FailFlush(syscall.EIO)
	if err := d.Sync(context.Background()); err == nil {
		t.Fatal("a sync that failed on the export succeeded")
	}
	if h := health(t, d); h != "AAA" {
		t.Fatalf("after the table's own flush failed: %s, want AAA", h)
	}
	m.FailFlush(0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.live.Load().FlushRequest(ctx); err == nil {
		t.Fatal("a flush with its context ended succeeded")
	}
	if h := health(t, d); h != "AAA" {
		t.Fatalf("after a flush whose context ended: %s, want AAA", h)
	}
}
