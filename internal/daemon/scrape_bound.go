package daemon

// The size of a /metrics scrape, per device. At 10,000 devices a scrape
// that cost 183 lines per idle device (six per-op latency histograms and a
// drain-wait histogram each, all zero) was 130 MB; now:
//
//   - an idle device costs idleDeviceSeries lines: read and write
//     operations, bytes and errors (6), and 11 gauges and counters;
//   - each other op it has seen adds 3 counters, and each op it has seen
//     adds a latency histogram of histogramLines lines (when metrics are
//     on), so a device costs at most maxDeviceSeries lines before its
//     targets;
//   - each (target, op) that has seen I/O adds 3, and each leg of a striped
//     target that I/O reached 3 more, and each fault kind a fault-injecting
//     target has injected 1 (2 for delays: count and total time): per-target
//     series grow with the targets in use, never with the size of the table;
//   - but each snapshot or snapshot-merge target adds snapshotSeries lines,
//     I/O or not (its COW fills from the origin's writes), 2 more once it
//     has copied and 2 more while it merges.
//
// The drain-wait histogram is the daemon's, not each device's.
const (
	idleDeviceSeries = 6 + 11
	histogramLines   = 19 + 1 + 2 // the 19 LatencyBuckets, +Inf, _sum and _count
	maxDeviceSeries  = idleDeviceSeries + 4*3 + 6*histogramLines
	snapshotSeries   = 2 // COW bytes used and COW size
)
