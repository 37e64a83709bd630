package targets

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// Tests that the origin's lock (originEntry.mu) is never held across a
// blocking call that other devices' origin writes would wait for.

// gatedExport is an in-memory export served over NBD whose reads and
// writes wait while its gate is shut; the gate opens at the test's end at
// the latest, so that nothing stays stuck on it.
func gatedExport(t *testing.T, size int) (m *nbdtest.Mem, uri string, shut func(), open func()) {
	t.Helper()
	m = nbdtest.NewMem(size)
	srv := nbdtest.Start(t, nbdtest.Exports{"a": m})
	var once *sync.Once
	var gate chan struct{}
	open = func() {
		if once != nil {
			once.Do(func() { close(gate) })
		}
	}
	shut = func() {
		gate, once = make(chan struct{}), new(sync.Once)
		m.SetGate(gate)
	}
	t.Cleanup(open)
	return m, srv.URI("a") + "&timeout=1h", shut, open
}

// A snapshot table that never went live (here: loaded, then destroyed, as
// a load replaced or a clear does) leaves at once, while an origin write
// is in flight on a remote origin that does not answer: its destroy used
// to wait for the origin's lock, held for reading across that write, so a
// failed or abandoned load over an origin hung on the origin's slowest
// write, and new origin writes queued behind it.
func TestSnapshotDestroyUnattachedNoWait(t *testing.T) {
	m, orig, shut, open := gatedExport(t, 1<<20)
	o := newSnapTable(t, "snapshot-origin", 2048, orig)
	s := newSnapTable(t, "snapshot", 2048, orig, tempFile(t, 1<<20), "P", "8")
	shut()
	wrote := make(chan error, 1)
	go func() { wrote <- o.tg.WriteAt(context.Background(), make([]byte, 4096), 0, 0) }()
	testkit.WaitFor(t, 10*time.Second, "the origin write to reach the server", func() bool { return m.Gated() == 1 })
	destroyed := make(chan struct{})
	go func() { s.destroy(); close(destroyed) }()
	t.Cleanup(func() { open(); <-destroyed }) // before s's own cleanup
	testkit.WaitFor(t, 10*time.Second, "the unattached snapshot's destroy", func() bool {
		select {
		case <-destroyed:
			return true
		default:
			return false
		}
	})
	if len(wrote) != 0 {
		t.Fatal("the origin write ended while its export's gate was shut")
	}
	open()
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}
