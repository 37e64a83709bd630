package targets

import (
	"testing"
	"time"
)

// A scrape's SnapshotStats must not wait for a metadata commit, which
// holds commitMu across writes and syncs of the COW device: a slow or hung
// COW device stalled every /metrics scrape with it, for the metadata
// figure SnapshotStats does not even report.
func TestSnapshotStatsDoesNotWaitForCommit(t *testing.T) {
	const chunk = 4096
	orig := fillPattern(t, 16*chunk, 4)
	o := newSnapTable(t, "snapshot-origin", 16*chunk/512, orig)
	s := newSnapTable(t, "snapshot", 16*chunk/512, orig, tempFile(t, 64*chunk), "P", "8").resume()
	o.mustWrite(make([]byte, chunk), 0, 0) // one COW fault
	ss := s.tg.(SnapshotStatser)
	want := ss.SnapshotStats()
	if want.ChunksCopied != 1 || want.CowUsedBytes == 0 {
		t.Fatalf("stats after one COW fault: %+v", want)
	}
	st := s.tg.(*snapshot).store.Load()
	st.commitMu.Lock() // a commit in progress, its sync not returning
	defer st.commitMu.Unlock()
	got := make(chan SnapshotStats, 1)
	go func() { got <- ss.SnapshotStats() }()
	select {
	case g := <-got:
		if g != want {
			t.Fatalf("stats %+v, want %+v", g, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SnapshotStats waited for the commit in progress")
	}
}
