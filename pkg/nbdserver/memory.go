package nbdserver

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// burstBytes is the high-water mark of bytes in flight, and unpooledBurst
// the bytes of unpooled buffers made, past either of which the end of a
// burst gives memory back to the OS (see memReleaser).
const (
	burstBytes    = 64 << 20
	unpooledBurst = MaxBlockSize
)

// releaseGap is the least time between two releases: each is a full
// garbage collection.
const releaseGap = 2 * time.Second

// memReleaser gives memory back to the OS when a burst of large requests
// has ended (bytes in flight fell to zero after passing burstBytes, or
// after unpooledBurst bytes of buffers too large to pool were made).
//
// Why: the Go runtime returns freed heap to the OS slowly, in the
// background; after eight clients with 32 MiB reads the daemon's RSS stayed
// hundreds of MiB over its baseline. A storage server shares its machine
// with the page cache it serves from, so it returns a burst's memory at
// once, at the cost of one collection, at most once per releaseGap.
//
// Both measures count since the last release, not since the bytes in
// flight last fell to zero: a burst often ends in a trickle of small zero
// crossings, and its garbage is released after the last of them.
type memReleaser struct {
	mu      sync.Mutex  // guards last and pending
	last    time.Time   // when the last release ran
	pending *time.Timer // a release is scheduled

	// Set once by Server.init (free by tests, before the server runs);
	// the counters they point to are atomic.
	runs     *atomic.Uint64 // Stats.MemoryReleases
	inFlight *atomic.Int64  // the shared budget's bytes
	peak     *atomic.Int64  // their high-water mark since the last release
	unpooled *atomic.Int64  // bytes of unpooled buffers made since then
	free     func()         // debug.FreeOSMemory; tests count calls instead
}

// burstEnded is called when the bytes in flight fall to zero. It schedules
// a release if they rose past burstBytes, or unpooledBurst bytes of
// unpooled buffers were made, since the last one: now, or when releaseGap
// has passed since the last one.
func (m *memReleaser) burstEnded() {
	if m.peak.Load() < burstBytes && m.unpooled.Load() < unpooledBurst {
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

// release gives memory back, unless a burst is on again: then the next
// time the bytes in flight fall to zero schedules it anew.
func (m *memReleaser) release() {
	m.mu.Lock()
	m.pending = nil
	m.mu.Unlock()
	if m.inFlight.Load() > 0 {
		return
	}
	m.peak.Store(0)
	m.unpooled.Store(0)
	free := m.free
	if free == nil {
		free = debug.FreeOSMemory
	}
	// Counted as it begins: whoever sees the memory given back (the RSS
	// falls during free) then also sees the release counted.
	m.runs.Add(1)
	free()
	m.mu.Lock()
	m.last = time.Now()
	m.mu.Unlock()
}
