package daemon

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/gdm-project/gdm/internal/testkit"
)

// A snapshot's metrics: one origin write copies one 4 KiB chunk (a COW
// fault) to the snapshot of another device, which saw no I/O itself; its
// COW holds header, metadata area and that chunk. Reloaded as a
// snapshot-merge, it reports its merge's progress down to 0 of 1.
func TestMetricsSnapshot(t *testing.T) {
	td := startTestDaemon(t, "")
	orig := testkit.Sparse(t, td.dir, "orig.img", 1<<20)
	cow := testkit.Sparse(t, td.dir, "cow.img", 1<<20)
	td.ok(t, "create", "o", "--table", "0 2048 snapshot-origin "+orig)
	snap := fmt.Sprintf("0 2048 snapshot %s %s P 8", orig, cow)
	td.ok(t, "create", "s", "--table", snap)
	o := mustGet(t, td, "o")
	if err := o.exp.WriteAt(context.Background(), make([]byte, 512), 8192); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP gdm_snapshot_bytes_copied_total Bytes of the origin chunks a snapshot copied to its COW device.
# TYPE gdm_snapshot_bytes_copied_total counter
gdm_snapshot_bytes_copied_total{device="s",target="0",type="snapshot"} 4096
# HELP gdm_snapshot_chunks_copied_total Origin chunks a snapshot copied to its COW device before they changed (COW faults).
# TYPE gdm_snapshot_chunks_copied_total counter
gdm_snapshot_chunks_copied_total{device="s",target="0",type="snapshot"} 1
# HELP gdm_snapshot_cow_size_bytes Size of a snapshot's COW device (dmsetup status' total sectors).
# TYPE gdm_snapshot_cow_size_bytes gauge
gdm_snapshot_cow_size_bytes{device="s",target="0",type="snapshot"} 1.048576e+06
# HELP gdm_snapshot_cow_used_bytes COW device bytes in use by a snapshot, header and metadata included (dmsetup status' allocated sectors).
# TYPE gdm_snapshot_cow_used_bytes gauge
gdm_snapshot_cow_used_bytes{device="s",target="0",type="snapshot"} 12288
`
	names := []string{"gdm_snapshot_chunks_copied_total", "gdm_snapshot_bytes_copied_total", "gdm_snapshot_cow_used_bytes",
		"gdm_snapshot_cow_size_bytes", "gdm_snapshot_merge_chunks_remaining", "gdm_snapshot_merge_chunks_initial"}
	if err := testutil.GatherAndCompare(newRegistry(td.d), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	td.ok(t, "remove", "o") // snapshot-merge takes the origin's role
	td.ok(t, "load", "s", "--table", fmt.Sprintf("0 2048 snapshot-merge %s %s P 8", orig, cow))
	td.ok(t, "resume", "s")
	merged := `
# HELP gdm_snapshot_merge_chunks_remaining Chunks a snapshot-merge has still to copy back to the origin; 0 when the merge is done.
# TYPE gdm_snapshot_merge_chunks_remaining gauge
gdm_snapshot_merge_chunks_remaining{device="s",target="0",type="snapshot-merge"} 0
# HELP gdm_snapshot_merge_chunks_initial Chunks a snapshot-merge had to copy back when its merge started.
# TYPE gdm_snapshot_merge_chunks_initial gauge
gdm_snapshot_merge_chunks_initial{device="s",target="0",type="snapshot-merge"} 1
# HELP gdm_snapshot_cow_used_bytes COW device bytes in use by a snapshot, header and metadata included (dmsetup status' allocated sectors).
# TYPE gdm_snapshot_cow_used_bytes gauge
gdm_snapshot_cow_used_bytes{device="s",target="0",type="snapshot-merge"} 8192
`
	testkit.WaitForValue(t, 20*time.Second, "the merge's metrics to reach 0 of 1", func() (bool, string) {
		err := testutil.GatherAndCompare(newRegistry(td.d), strings.NewReader(merged),
			"gdm_snapshot_merge_chunks_remaining", "gdm_snapshot_merge_chunks_initial", "gdm_snapshot_cow_used_bytes")
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	// promtool's lint, as TestPromtoolCheckMetrics runs it on a scrape
	// without snapshots: a gauge named _total was its one complaint here.
	mfs, err := newRegistry(td.d).Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %+v", err, problems)
	}
}
