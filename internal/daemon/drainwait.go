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
}

// add folds a closed device's drain waits in. Called after dev.Close,
// which waits for the last drain.
func (r *drainRetired) add(dev *table.Device) {
	s := dev.Stats().DrainWait.Snapshot()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snap = sumHistograms(r.snap, s)
}

// drainWait is the drain-wait histogram of every device the daemon has
// had: the live ones' plus the retired ones'.
func (d *daemon) drainWait() table.HistogramSnapshot {
	d.retired.mu.Lock()
	sum := sumHistograms(table.HistogramSnapshot{}, d.retired.snap)
	d.retired.mu.Unlock()
	for _, m := range d.list() {
		sum = sumHistograms(sum, m.dev.Stats().DrainWait.Snapshot())
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
