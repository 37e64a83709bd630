package nbdserver

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// When the bytes in flight fall to zero after rising past burstBytes since
// the last release, memory is given back, once; not while a burst is on,
// and not after small ones. A burst that ends in small zero crossings is
// still released after the last.
func TestMemoryReleaseAfterBurst(t *testing.T) {
	freed := make(chan struct{}, 4)
	var runs, waits atomic.Uint64
	var big atomic.Int64
	m := &memReleaser{runs: &runs, unpooled: &big, free: func() { freed <- struct{}{} }}
	g := newSharedBudget(1<<30, &waits, m.burstEnded)
	m.inFlight, m.peak = &g.bytes, &g.peak
	noRelease := func(when string) {
		t.Helper()
		m.mu.Lock()
		pending := m.pending != nil
		m.mu.Unlock()
		if pending || runs.Load() != 0 {
			t.Fatalf("a release %s", when)
		}
	}
	g.tryAcquire(burstBytes / 2)
	g.release(burstBytes / 2)
	noRelease("after a small burst")
	g.tryAcquire(burstBytes)
	g.tryAcquire(1)
	g.release(burstBytes)
	noRelease("with bytes still in flight")
	g.release(1) // the burst's last zero crossing is a small one
	select {
	case <-freed:
	case <-time.After(10 * time.Second):
		t.Fatal("no release after a burst")
	}
	testkit.WaitFor(t, 10*time.Second, "the release to be counted", func() bool { return runs.Load() == 1 })
	if p := g.peak.Load(); p != 0 {
		t.Fatalf("peak %d after the release, want 0", p)
	}

	// A small burst that made a large unpooled buffer is released too.
	big.Add(unpooledBurst)
	g.tryAcquire(1)
	g.release(1)
	select {
	case <-freed:
	case <-time.After(10 * time.Second):
		t.Fatal("no release after an unpooled buffer")
	}
	testkit.WaitFor(t, 10*time.Second, "the second release to be counted", func() bool { return runs.Load() == 2 })
}
