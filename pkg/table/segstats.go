package table

import "sync/atomic"

// segChunk is how many targets' counters are made at once.
const segChunk = 64

// segStats are a table's per-target counters. A target's SegmentStats are
// 144 bytes, more than everything else a target costs; a table of a million
// targets on which I/O touches a few must not pay that a million times. So
// counters are made on the first I/O to any of segChunk neighbouring
// targets: until then those cost a nil pointer between them (an eighth of a
// byte a target) and read as zeros.
type segStats struct {
	n      int
	chunks []atomic.Pointer[[segChunk]SegmentStats]
}

func newSegStats(n int) segStats {
	return segStats{n: n, chunks: make([]atomic.Pointer[[segChunk]SegmentStats], (n+segChunk-1)/segChunk)}
}

// record counts one op on target i.
func (s *segStats) record(i int, op Op, n int64, err error) {
	c := s.chunks[i/segChunk].Load()
	if c == nil {
		c = s.make(i / segChunk)
	}
	c[i%segChunk].record(op, n, err)
}

// make installs chunk k's counters; of two racing first I/Os, one's
// counters win and both count in them.
func (s *segStats) make(k int) *[segChunk]SegmentStats {
	c := new([segChunk]SegmentStats)
	if s.chunks[k].CompareAndSwap(nil, c) {
		return c
	}
	return s.chunks[k].Load()
}

// SegmentSnapshot returns a copy of each target's counters, in table order.
// For a big table, EachSegment visits only the targets that have seen I/O.
func (t *Table) SegmentSnapshot() []OpSnapshot {
	out := make([]OpSnapshot, t.stats.n)
	t.EachSegment(func(i int, s OpSnapshot) { out[i] = s })
	return out
}

// EachSegment calls fn, in table order, with the counters of each target
// that has seen I/O: what a metrics scrape of a million-target table wants,
// rather than a million snapshots of zeros.
func (t *Table) EachSegment(fn func(i int, s OpSnapshot)) {
	for k := range t.stats.chunks {
		c := t.stats.chunks[k].Load()
		if c == nil {
			continue
		}
		for j := range c {
			if s := c[j].Snapshot(); s.seen() {
				fn(k*segChunk+j, s)
			}
		}
	}
}

// seen reports whether any op was counted (every op counts in Ops).
func (s *OpSnapshot) seen() bool {
	for _, n := range s.Ops {
		if n != 0 {
			return true
		}
	}
	return false
}
