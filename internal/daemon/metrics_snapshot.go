package daemon

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gdm-project/gdm/pkg/table"
	"github.com/gdm-project/gdm/pkg/targets"
)

// Snapshot metrics, per device and target, with the label set of the
// fault metrics (device, target index, type): a snapshot's COW faults and
// COW space, and a snapshot-merge's progress. The stats are read from the
// target (targets.SnapshotStatser) at scrape time.
var (
	descSnapChunks = prometheus.NewDesc("gdm_snapshot_chunks_copied_total",
		"Origin chunks a snapshot copied to its COW device before they changed (COW faults).", faultLabels[:3], nil)
	descSnapBytes = prometheus.NewDesc("gdm_snapshot_bytes_copied_total",
		"Bytes of the origin chunks a snapshot copied to its COW device.", faultLabels[:3], nil)
	descSnapUsed = prometheus.NewDesc("gdm_snapshot_cow_used_bytes",
		"COW device bytes in use by a snapshot, header and metadata included (dmsetup status' allocated sectors).", faultLabels[:3], nil)
	descSnapSize = prometheus.NewDesc("gdm_snapshot_cow_size_bytes",
		"Size of a snapshot's COW device (dmsetup status' total sectors).", faultLabels[:3], nil)
	descMergeLeft = prometheus.NewDesc("gdm_snapshot_merge_chunks_remaining",
		"Chunks a snapshot-merge has still to copy back to the origin; 0 when the merge is done.", faultLabels[:3], nil)
	descMergeTotal = prometheus.NewDesc("gdm_snapshot_merge_chunks_initial",
		"Chunks a snapshot-merge had to copy back when its merge started.", faultLabels[:3], nil)
)

// snapshotDescs are the descriptors above, for Describe.
var snapshotDescs = []*prometheus.Desc{descSnapChunks, descSnapBytes, descSnapUsed, descSnapSize, descMergeLeft, descMergeTotal}

// collectSnapshots sends the series of every snapshot target of a live
// table, whether or not the target saw I/O of its own: its COW fills from
// origin writes to another device, and a merge progresses with no I/O.
// (A type assertion per target: cheap beside the scrape of one series.)
func collectSnapshots(ch chan<- prometheus.Metric, t *table.Table, tgs []targets.Target, name string) {
	for i, tg := range tgs {
		if ss, ok := tg.(targets.SnapshotStatser); ok {
			collectSnapshot(ch, ss.SnapshotStats(), name, strconv.Itoa(i), t.Line(i).Type)
		}
	}
}

// collectSnapshot sends one snapshot target's series: the COW space
// always, the copy counters once it has copied, the merge's progress for
// a snapshot-merge.
func collectSnapshot(ch chan<- prometheus.Metric, s targets.SnapshotStats, name, idx, typ string) {
	gauge(ch, descSnapUsed, float64(s.CowUsedBytes), name, idx, typ)
	gauge(ch, descSnapSize, float64(s.CowTotalBytes), name, idx, typ)
	if s.ChunksCopied > 0 {
		counter(ch, descSnapChunks, s.ChunksCopied, name, idx, typ)
		counter(ch, descSnapBytes, s.BytesCopied, name, idx, typ)
	}
	if s.Merging {
		gauge(ch, descMergeLeft, float64(s.MergeRemaining), name, idx, typ)
		gauge(ch, descMergeTotal, float64(s.MergeTotal), name, idx, typ)
	}
}
