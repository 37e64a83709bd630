package table

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/targets"
)

// Each hook at its dm point, in table order, through a device's life:
// first resume, suspend, resume, close.
func TestHooksAtDMPoints(t *testing.T) {
	takeEvents()
	ctx := context.Background()
	d := newLiveDevice(t, "0 8 test-recorder a\n8 8 test-recorder b")
	expectEvents(t, "first resume", "a:preresume", "b:preresume", "a:resume", "b:resume")

	must(t, d.Suspend(ctx, false))
	expectEvents(t, "suspend", "a:presuspend", "b:presuspend", "a:flush", "b:flush", "a:postsuspend", "b:postsuspend")
	must(t, d.Suspend(ctx, false))
	expectEvents(t, "suspend of a suspended device")

	must(t, d.Resume(ctx, false))
	expectEvents(t, "resume", "a:preresume", "b:preresume", "a:resume", "b:resume")
	must(t, d.Resume(ctx, false))
	expectEvents(t, "resume of a running device")

	must(t, d.Close())
	expectEvents(t, "close", "a:presuspend", "b:presuspend", "a:flush", "b:flush",
		"a:postsuspend", "b:postsuspend", "a:destroy", "b:destroy")
	if bad := badDestroys(); len(bad) > 0 {
		t.Fatalf("destructor called from a forbidden place:\n%s", bad[0])
	}
}

// A swap: the new table is asked first, the old one is suspended (its I/O
// drained and flushed), the new one resumed, and the old one destroyed.
func TestHooksOfASwap(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name          string
		suspend, live bool
		want          []string
	}{
		{"quiesced", false, false, []string{"new:preresume", "old:presuspend", "old:flush", "old:postsuspend", "new:resume", "old:destroy"}},
		{"suspended first", true, false, []string{"new:preresume", "old:flush", "new:resume", "old:destroy"}},
		{"live", false, true, []string{"new:preresume", "old:presuspend", "new:resume", "old:flush", "old:postsuspend", "old:destroy"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newLiveDevice(t, "0 8 test-recorder old")
			defer d.Close()
			if c.suspend {
				must(t, d.Suspend(ctx, true))
			}
			must(t, d.LoadText("0 8 test-recorder new"))
			takeEvents()
			must(t, d.Resume(ctx, c.live))
			expectEvents(t, "swap", c.want...)
		})
	}
	t.Run("a table that never went live", func(t *testing.T) {
		d := newLiveDevice(t, "0 8 zero")
		defer d.Close()
		takeEvents()
		must(t, d.LoadText("0 8 test-recorder a"))
		must(t, d.LoadText("0 8 test-recorder b"))
		must(t, d.Clear())
		expectEvents(t, "load over, clear", "a:destroy", "b:destroy")
	})
}

// A refused PreResume refuses the resume and changes nothing: the old
// table stays live and serving, without a hook; the new one stays inactive.
func TestPreResumeRefusalLeavesOldTableLive(t *testing.T) {
	ctx := context.Background()
	for _, live := range []bool{false, true} {
		d := newLiveDevice(t, "0 8 test-recorder old")
		old := d.live.Load()
		must(t, d.LoadText("0 8 test-recorder new refuse"))
		next := d.inactive.Load()
		gen := d.Stats().Generation.Load()
		takeEvents()
		err := d.Resume(ctx, live)
		if !errors.Is(err, errRefused) || !strings.Contains(err.Error(), "no swap was made") {
			t.Fatalf("live=%v: Resume = %v, want the target's refusal", live, err)
		}
		expectEvents(t, "refused resume", "new:preresume")
		if d.live.Load() != old || d.inactive.Load() != next || d.Suspended() || d.gate.Load() != nil ||
			d.Stats().Generation.Load() != gen || old.Destroyed() || next.Destroyed() {
			t.Fatalf("live=%v: a refused resume changed the device", live)
		}
		must(t, d.ReadAt(ctx, make([]byte, 512), 0))
		must(t, d.Close())
		expectEvents(t, "close", "new:destroy", "old:presuspend", "old:flush", "old:postsuspend", "old:destroy")
	}
}

// A suspended device whose table refuses to resume stays suspended.
func TestPreResumeRefusalKeepsDeviceSuspended(t *testing.T) {
	ctx := context.Background()
	d := NewDevice("test", false, discardLog())
	defer d.Close()
	must(t, d.LoadText("0 8 test-recorder a refuse"))
	if err := d.Resume(ctx, false); !errors.Is(err, errRefused) || d.HasLive() {
		t.Fatalf("first resume = %v (live %v), want refused", err, d.HasLive())
	}
	takeEvents()
}

// A suspend that gives up (its context ends with I/O in flight) undoes
// PreSuspend and never calls PostSuspend.
func TestFailedSuspendUndoesPreSuspend(t *testing.T) {
	d := newLiveDevice(t, "0 8 test-recorder a")
	defer d.Close()
	stuck, err := d.Get(context.Background())
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	takeEvents()
	if err := d.Suspend(ctx, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Suspend = %v, want deadline exceeded", err)
	}
	stuck.Put()
	expectEvents(t, "failed suspend", "a:presuspend", "a:presuspend-undo")
}

// A suspend whose flush fails (a backing device that cannot sync, such as
// a dead remote host) is undone like one that times out: PreSuspend is
// undone, PostSuspend never runs, the device is not suspended and I/O goes
// on. With noflush the same device suspends.
func TestFailedFlushUndoesSuspend(t *testing.T) {
	ctx := context.Background()
	d := newLiveDevice(t, "0 8 test-recorder a")
	defer d.Close()
	flushes := watchFlushes(t, d)
	flushes.fail = d.live.Load()
	takeEvents()
	if err := d.Suspend(ctx, false); err == nil || !strings.Contains(err.Error(), "injected flush failure") {
		t.Fatalf("Suspend = %v, want the flush's error", err)
	}
	expectEvents(t, "suspend whose flush failed", "a:presuspend", "a:presuspend-undo")
	if d.Suspended() {
		t.Fatal("the device is suspended after a suspend that failed")
	}
	held, err := d.Get(ctx) // would wait for a resume behind a gate left up
	must(t, err)
	held.Put()
	must(t, d.Suspend(ctx, true))
	if !d.Suspended() {
		t.Fatal("noflush did not suspend")
	}
	expectEvents(t, "noflush suspend", "a:presuspend", "a:postsuspend")
}

// The destructor runs exactly once per table, from destroy: never from the
// Put of the last holder of a table being destroyed, nor from an I/O, even
// with I/O running through many swaps.
func TestDestructorOnceNeverFromPutOrIO(t *testing.T) {
	ctx := context.Background()
	d := newLiveDevice(t, "0 8 test-recorder t0")
	holder := d.acquire(Live) // e.g. a status call, holding the old table
	must(t, d.LoadText("0 8 test-recorder t1"))
	resumed := make(chan error)
	go func() { resumed <- d.Resume(ctx, true) }()
	testkit.WaitFor(t, 10*time.Second, "the swap to drain", func() bool { return d.Stats().Destroying.Load() == 1 })
	for _, e := range takeEvents() {
		if e == "t0:destroy" {
			t.Fatal("destructor ran while a holder remained")
		}
	}
	holder.Put() // wakes the destroyer; must not destroy
	must(t, <-resumed)

	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			p := make([]byte, 512)
			for !stop.Load() {
				if err := d.ReadAt(ctx, p, 0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	const swaps = 50
	for i := range swaps {
		must(t, d.LoadText("0 8 test-recorder t"+string(rune('a'+i%26))))
		must(t, d.Resume(ctx, i%2 == 0))
	}
	stop.Store(true)
	wg.Wait()
	must(t, d.Close())
	destroys := 0
	for _, e := range takeEvents() {
		if strings.HasSuffix(e, ":destroy") {
			destroys++
		}
	}
	if want := swaps + 2; destroys != want { // t0, t1 and the swapped-in tables
		t.Fatalf("%d destructor calls, want %d (one per table)", destroys, want)
	}
	if bad := badDestroys(); len(bad) > 0 {
		t.Fatalf("destructor called from a forbidden place:\n%s", bad[0])
	}
}

// A table that fails to build destroys the targets it built, once.
func TestFailedBuildDestroysBuiltTargets(t *testing.T) {
	takeEvents()
	if _, err := FromText("0 8 test-recorder a\n8 8 linear /nonexistent/gdm 0", false); err == nil {
		t.Fatal("a table with a missing backing file was built")
	}
	expectEvents(t, "failed build", "a:destroy")
}

// resume --live is refused, with nothing changed, when either table holds
// a NoLiveSwap target; without --live the same swap is made.
func TestLiveResumeRefusedForStatefulTable(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ live, next, which string }{
		{"0 8 test-stateful s", "0 8 zero", "live"},
		{"0 8 zero", "0 8 test-stateful s", "inactive"},
	} {
		d := newLiveDevice(t, c.live)
		old := d.live.Load()
		must(t, d.LoadText(c.next))
		next := d.inactive.Load()
		gen := d.Stats().Generation.Load()
		takeEvents()
		err := d.Resume(ctx, true)
		if !errors.Is(err, ErrLiveSwapRefused) {
			t.Fatalf("%s: Resume(live) = %v, want ErrLiveSwapRefused", c.which, err)
		}
		for _, want := range []string{"test", "the " + c.which + " table", "test-stateful", "resume without --live"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("%s: error %q does not say %q", c.which, err, want)
			}
		}
		expectEvents(t, "refused live swap") // no hook ran
		if d.live.Load() != old || d.inactive.Load() != next || d.Stats().Generation.Load() != gen || old.Destroyed() {
			t.Fatalf("%s: a refused live swap changed the device", c.which)
		}
		must(t, d.Resume(ctx, false))
		if d.live.Load() != next || !old.Destroyed() {
			t.Fatalf("%s: the swap without --live was not made", c.which)
		}
		must(t, d.Close())
	}
	// With no old table there is no second live table: a first resume
	// --live (how a device is created) is allowed.
	d := NewDevice("test", false, discardLog())
	must(t, d.LoadText("0 8 test-stateful s"))
	must(t, d.Resume(ctx, true))
	// Nor is one on a suspended device: the old table's I/O has stopped.
	must(t, d.Suspend(ctx, false))
	must(t, d.LoadText("0 8 test-stateful s2"))
	must(t, d.Resume(ctx, true))
	must(t, d.Close())
	takeEvents()
}

// A client's FLUSH reaches every target that sees FLUSH requests, then
// every target with a Flush of its own, once each (the suspend and swap
// tests show the table's own flushes reach Flush alone), and is counted;
// a sync reaches Flush alone and is not; a FUA write reaches the target
// with its flag.
func TestFlushAndFUAReachTargets(t *testing.T) {
	ctx := context.Background()
	d := newLiveDevice(t, "0 8 test-recorder a\n8 8 zero\n16 8 test-recorder b")
	defer d.Close()
	takeEvents()
	must(t, d.Flush(ctx))
	expectEvents(t, "flush", "a:flush-request", "b:flush-request", "a:flush", "b:flush")
	must(t, d.Sync(ctx))
	expectEvents(t, "sync (no client's FLUSH)", "a:flush", "b:flush")
	if n := d.Stats().IO.Snapshot().Ops[OpFlush]; n != 1 {
		t.Fatalf("%d flushes counted, want the client's 1: a sync is no request", n)
	}
	must(t, d.WriteAtFlags(ctx, make([]byte, 24*512), 0, targets.FUA))
	expectEvents(t, "FUA write over all three", "a:write-fua", "b:write-fua")
	must(t, d.WriteAt(ctx, make([]byte, 24*512), 0))
	expectEvents(t, "plain write")
}
