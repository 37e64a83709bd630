package daemon

import (
	"sync"

	"github.com/gdm-project/gdm/pkg/table"
)

// drainRetired keeps the drain waits of devices that are gone (removed, or
// replaced by a broken placeholder at restore), so that the daemon-wide
// gdm_table_drain_wait_seconds histogram never goes down when a device
// does. One histogram for the daemon, not one per device: 22 series in
// all, where one per device cost 22 lines of every idle device's scrape.
type drainRetired struct {
	mu   sync.Mutex
	snap table.HistogramSnapshot
	// closing are devices being removed: no longer listed, still draining
	// (their Close waits for holders). Their waits are read live until
	// add folds them in; before, they were missing meanwhile, and the
	// histogram went down and up again, which reads as a reset.
	closing map[*table.Device]struct{}
}

// closeBegins marks dev as leaving: called before it is unregistered, so
// that drainWait, which holds mu across its walk, counts it either as
// listed or as closing, never both and never neither.
func (r *drainRetired) closeBegins(dev *table.Device) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing == nil {
		r.closing = map[*table.Device]struct{}{}
	}
	r.closing[dev] = struct{}{}
}

// add folds a closed device's drain waits in. Called after dev.Close,
// which waits for the last drain.
func (r *drainRetired) add(dev *table.Device) {
	s := dev.Stats().DrainWait.Snapshot()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snap = sumHistograms(r.snap, s)
	delete(r.closing, dev)
}

// drainWait is the drain-wait histogram of every device the daemon has
// had: the live ones', the closing ones' and the retired ones'.
func (d *daemon) drainWait() table.HistogramSnapshot {
	d.retired.mu.Lock()
	defer d.retired.mu.Unlock()
	sum := sumHistograms(table.HistogramSnapshot{}, d.retired.snap)
	for dev := range d.retired.closing {
		sum = sumHistograms(sum, dev.Stats().DrainWait.Snapshot())
	}
	for _, m := range d.list() {
		if _, leaving := d.retired.closing[m.dev]; !leaving {
			sum = sumHistograms(sum, m.dev.Stats().DrainWait.Snapshot())
		}
	}
	return sum
}

// sumHistograms adds b into a (a copy of a when a has no buckets yet).
func sumHistograms(a, b table.HistogramSnapshot) table.HistogramSnapshot {
	if len(a.Counts) < len(b.Counts) {
		c := make([]uint64, len(b.Counts))
		copy(c, a.Counts)
		a.Counts = c
	}
	for i, n := range b.Counts {
		a.Counts[i] += n
	}
	a.Sum += b.Sum
	return a
}
