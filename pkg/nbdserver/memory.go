package nbdserver

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// burstBytes is the high-water mark of bytes in flight past which the end
// of a burst gives memory back to the OS (see memReleaser).
const burstBytes = 64 << 20

// releaseGap is the least time between two releases: each is a full
// garbage collection.
const releaseGap = 2 * time.Second

// memReleaser gives memory back to the OS when a burst of large requests
// has ended (bytes in flight fell to zero after passing burstBytes).
//
// Why: the Go runtime returns freed heap to the OS slowly, in the
// background; after eight clients with 32 MiB reads the daemon's RSS stayed
// hundreds of MiB over its baseline. A storage server shares its machine
// with the page cache it serves from, so it returns a burst's memory at
// once, at the cost of one collection, at most once per releaseGap.
type memReleaser struct {
	mu      sync.Mutex
	last    time.Time   // when the last release ran
	pending *time.Timer // a release is scheduled
	runs    *atomic.Uint64
	free    func() // debug.FreeOSMemory; tests count calls instead
}

// burstEnded schedules a release if the burst was large: now, or when
// releaseGap has passed since the last one.
func (m *memReleaser) burstEnded(peak int64) {
	if peak < burstBytes {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending != nil {
		return
	}
	wait := max(0, releaseGap-time.Since(m.last))
	m.pending = time.AfterFunc(wait, m.release)
}

func (m *memReleaser) release() {
	free := m.free
	if free == nil {
		free = debug.FreeOSMemory
	}
	free()
	m.runs.Add(1)
	m.mu.Lock()
	m.last = time.Now()
	m.pending = nil
	m.mu.Unlock()
}
