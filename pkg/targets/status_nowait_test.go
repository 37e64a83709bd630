package targets

import (
	"context"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// A target's status never waits for its devices' I/O: `gdm status`
// answers while a commit or a log append is stuck on a device that does
// not answer (a remote's timeout, or for ever).

// statusDuring fails unless status returns while stuck, started first,
// has reached the gated export (gated > 0) and not returned.
func statusDuring(t *testing.T, gated func() int, open func(), stuck func() error, status func() string) string {
	t.Helper()
	ended := make(chan error, 1)
	go func() { ended <- stuck() }()
	t.Cleanup(func() { open(); <-ended })
	testkit.WaitFor(t, 10*time.Second, "the I/O to reach the gated export", func() bool { return gated() > 0 })
	got := make(chan string, 1)
	go func() { got <- status() }()
	select {
	case s := <-got:
		if len(ended) != 0 {
			t.Fatal("the stuck I/O ended while its export's gate was shut")
		}
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the status waited for I/O stuck on a device")
		return ""
	}
}

// A snapshot's status, while a write to it commits its new exception to
// a COW that does not answer (the gate shuts once the data is written):
// the metadata's size was read under the commit's lock.
func TestSnapshotStatusDuringCommit(t *testing.T) {
	orig := tempFile(t, 1<<20)
	m, cow, shut, open := gatedExport(t, 1<<20)
	s := newSnapTable(t, "snapshot", 2048, orig, cow, "P", "8").resume()
	s.tg.(*snapshot).beforeCommit = shut
	st := statusDuring(t, m.Gated, open,
		func() error { return s.tg.WriteAt(context.Background(), make([]byte, 4096), 0, 0) },
		func() string { return s.tg.Status(StatusInfo) })
	if st == "" || st == "Invalid" {
		t.Fatalf("status %q", st)
	}
}

// A log-writes status, while a FUA write is logged to a log device that
// does not answer: the counts were read under the append's lock.
func TestLogWritesStatusDuringAppend(t *testing.T) {
	m, logURI, shut, open := gatedExport(t, 1<<20)
	lw := newSnapTable(t, "log-writes", 128, tempFile(t, 64*1024), logURI).resume().tg.(*logWrites)
	shut()
	st := statusDuring(t, m.Gated, open,
		func() error { return lw.WriteAt(context.Background(), sectorOf('a', 1), 0, FUA) },
		func() string { return lw.Status(StatusInfo) })
	if st != "1 2" {
		t.Fatalf("status %q during the first entry's append", st)
	}
}
