package daemon

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/prometheus/common/expfmt"
)

// deviceLines counts the exposition lines of one device in a scrape.
func deviceLines(t *testing.T, td *testDaemon, name string) int {
	t.Helper()
	mfs, err := newRegistry(td.d).Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, `device="`+name+`"`) {
			n++
		}
	}
	return n
}

// An idle device costs idleDeviceSeries lines of a scrape, and one that
// has seen every op (with latency histograms on) maxDeviceSeries: the
// bound the README states.
func TestScrapeLinesPerDevice(t *testing.T) {
	td := startTestDaemon(t, "")
	if !td.d.timed {
		t.Fatal("the test daemon does not time I/O: histograms untested")
	}
	td.ok(t, "create", "idle", "--table", "0 64 zero")
	if n := deviceLines(t, td, "idle"); n != idleDeviceSeries {
		t.Errorf("idle device: %d lines, want %d", n, idleDeviceSeries)
	}
	m := mustGet(t, td, "idle")
	ctx := context.Background()
	buf := make([]byte, 512)
	m.dev.ReadAt(ctx, buf, 0)
	m.dev.WriteAt(ctx, buf, 0)
	m.dev.Flush(ctx)
	m.dev.Trim(ctx, 0, 512)
	m.exp.Zero(ctx, 0, 512, false, false)
	m.exp.Extents(ctx, 0, 512, func(int64, uint32) bool { return true })
	// The zero target's own per-target series: 3 per op it saw (flush is
	// the device's, not a target's).
	perTarget := 3 * 5
	if n := deviceLines(t, td, "idle"); n != maxDeviceSeries+perTarget {
		t.Errorf("device that saw every op: %d lines, want %d", n, maxDeviceSeries+perTarget)
	}
}

// The daemon-wide drain-wait histogram keeps the waits of removed devices:
// a counter that went down when a device did would read as a reset.
func TestDrainWaitSurvivesRemove(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "d", "--table", "0 8 zero")
	td.ok(t, "load", "d", "--table", "0 16 zero")
	td.ok(t, "resume", "d") // the first table is destroyed: one drain
	before := td.d.drainWait().Count()
	if before == 0 {
		t.Fatal("a swap recorded no drain wait")
	}
	// A holder keeps the remove in its drain, the device no longer
	// listed: its waits count meanwhile too.
	m := mustGet(t, td, "d")
	held, err := m.dev.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	removed := make(chan struct{})
	go func() {
		td.ok(t, "remove", "d")
		close(removed)
	}()
	testkit.WaitFor(t, 10*time.Second, "the device to be unlisted", func() bool { _, err := td.d.get("d"); return err != nil })
	during := td.d.drainWait().Count()
	held.Put()
	<-removed
	if after := td.d.drainWait().Count(); during < before || after < before {
		t.Fatalf("drain waits went from %d to %d while the device was removed, %d after", before, during, after)
	}
}

// A striped target's leg series are those of the legs I/O reached, as
// the README bounds them, not all of its legs: one read of a 64-leg
// target cost 192 lines of every scrape, and a target of 100,000 legs
// 300,000.
func TestScrapeLinesPerStripedLeg(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	args := []string{"0", "512", "striped", "64", "8"}
	for i := range 64 {
		args = append(args, a, strconv.Itoa(8*i))
	}
	td.ok(t, "create", "s", "--table", strings.Join(args, " "))
	m := mustGet(t, td, "s")
	if err := m.dev.ReadAt(context.Background(), make([]byte, 4096), 0); err != nil { // leg 0's first chunk
		t.Fatal(err)
	}
	mfs, err := newRegistry(td.d).Gather()
	if err != nil {
		t.Fatal(err)
	}
	legs := 0
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "gdm_target_leg_io_") {
			legs += len(mf.GetMetric())
		}
	}
	if legs != 3 {
		t.Fatalf("leg series after I/O on one leg of 64: %d, want 3", legs)
	}
}

// A snapshot target costs snapshotSeries lines with no I/O at all, the
// figure the README's bound adds for it.
func TestScrapeLinesPerSnapshot(t *testing.T) {
	td := startTestDaemon(t, "")
	orig := testkit.Sparse(t, td.dir, "orig.img", 1<<20)
	cow := testkit.Sparse(t, td.dir, "cow.img", 1<<20)
	td.ok(t, "create", "s", "--table", "0 2048 snapshot "+orig+" "+cow+" P 8")
	if n := deviceLines(t, td, "s"); n != idleDeviceSeries+snapshotSeries {
		t.Fatalf("idle snapshot device: %d lines, want %d", n, idleDeviceSeries+snapshotSeries)
	}
}
