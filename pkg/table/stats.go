package table

import (
	"sync/atomic"
	"time"
)

// Op is a kind of I/O, for statistics.
type Op int

// The ops, in the order their counters are kept.
const (
	OpRead Op = iota
	OpWrite
	OpFlush
	OpTrim
	OpZero
	OpBlockStatus
	NumOps
)

var opNames = [NumOps]string{"read", "write", "flush", "trim", "zero", "block_status"}

func (o Op) String() string { return opNames[o] }

// OpCounters counts operations, bytes and errors per op. The I/O path pays
// three relaxed atomic adds at most; readers take a Snapshot.
type OpCounters struct {
	ops, bytes, errors [NumOps]atomic.Uint64
}

func (c *OpCounters) record(op Op, n int64, err error) {
	c.ops[op].Add(1)
	if err != nil {
		c.errors[op].Add(1)
		return
	}
	if n > 0 {
		c.bytes[op].Add(uint64(n))
	}
}

// OpSnapshot is a copy of OpCounters at one moment.
type OpSnapshot struct {
	Ops, Bytes, Errors [NumOps]uint64
}

// Snapshot copies the counters.
func (c *OpCounters) Snapshot() OpSnapshot {
	var s OpSnapshot
	for i := range NumOps {
		s.Ops[i] = c.ops[i].Load()
		s.Bytes[i] = c.bytes[i].Load()
		s.Errors[i] = c.errors[i].Load()
	}
	return s
}

// SegmentStats counts I/O on one target of a table.
type SegmentStats = OpCounters

// LatencyBuckets are the upper bounds of Histogram's buckets: 10 µs to 10 s,
// about three per decade.
var LatencyBuckets = []time.Duration{
	10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// Histogram is a fixed-bucket latency histogram with atomic counters, so the
// I/O path can observe without a lock. Bucket i counts observations <=
// LatencyBuckets[i]; the last counts the rest.
type Histogram struct {
	counts [20]atomic.Uint64 // len(LatencyBuckets)+1
	sumNs  atomic.Uint64
}

// Observe adds one duration.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(LatencyBuckets) && d > LatencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(max(d, 0)))
}

// HistogramSnapshot is a copy of a Histogram: Counts per bucket (not
// cumulative), the last past the largest bound.
type HistogramSnapshot struct {
	Counts []uint64
	Sum    time.Duration
}

// Snapshot copies the histogram.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Counts: make([]uint64, len(h.counts)), Sum: time.Duration(h.sumNs.Load())}
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	return s
}

// Count is the number of observations.
func (s HistogramSnapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}
