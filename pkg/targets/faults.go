package targets

import (
	"sync/atomic"
	"time"
)

// FaultKind is one way a fault-injecting target (flakey, delay, dust)
// changes I/O. Metrics report each kind of each target apart.
type FaultKind uint8

const (
	FaultReadError    FaultKind = iota // a read answered with an error it would not have had
	FaultWriteError                    // a write answered with an error, its data not written
	FaultWriteDropped                  // a write acknowledged but not written
	FaultCorrupted                     // a request whose data was altered (corrupt_bio_byte, random_*_corrupt)
	FaultDelayed                       // a request held back before being served
	NumFaultKinds
)

// faultKindNames are the metric label values, indexed by FaultKind.
var faultKindNames = [NumFaultKinds]string{"read_error", "write_error", "write_dropped", "corrupted", "delayed"}

// String is the kind's metric label: read_error, write_error,
// write_dropped, corrupted or delayed.
func (k FaultKind) String() string {
	if k < NumFaultKinds {
		return faultKindNames[k]
	}
	return "unknown"
}

// FaultStats counts the faults one target injected. The I/O path bumps
// them (atomics, no lock); the metrics collector reads them at scrape
// time. The zero value is ready to use.
type FaultStats struct {
	// Requests is how many requests (or pieces of one, per target) got
	// each kind of fault.
	Requests [NumFaultKinds]atomic.Uint64
	// delayNanos is the total time delayed requests were held.
	delayNanos atomic.Uint64
}

// Add counts one request that got fault k.
func (s *FaultStats) Add(k FaultKind) { s.Requests[k].Add(1) }

// AddDelay counts one delayed request that was held for d.
func (s *FaultStats) AddDelay(d time.Duration) {
	s.Requests[FaultDelayed].Add(1)
	if d > 0 {
		s.delayNanos.Add(uint64(d))
	}
}

// Delay is the total time delayed requests were held.
func (s *FaultStats) Delay() time.Duration { return time.Duration(s.delayNanos.Load()) }

// FaultCounter is a target that injects faults and counts them; the daemon
// exports the counts as gdm_target_faults_total and
// gdm_target_fault_delay_seconds_total.
type FaultCounter interface {
	Faults() *FaultStats
}
