package targets

import (
	"bytes"
	"context"
	"sync"
	"syscall"
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

// done reports whether ch is closed, without waiting.
func done(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// reloadCase is an origin of 16 chunks of 4 KiB, its snapshot-origin, a
// snapshot a over a gated remote COW, resumed, and a snapshot b loaded
// over the same COW; chunk 1 of the origin is written after b's New, so
// that only a has its exception: b must take it from a (a handover) or
// read the COW again (a left).
type reloadCase struct {
	before     []byte // the origin's data before any write
	m          *nbdtest.Mem
	shut, open func()
	o, a, b    *snapTable
}

const reloadChunk = 4096

func newReloadCase(t *testing.T, seed byte) *reloadCase {
	orig := fillPattern(t, 16*reloadChunk, seed)
	c := &reloadCase{before: readFile(t, orig)}
	var cow string
	c.m, cow, c.shut, c.open = gatedExport(t, 1<<20)
	c.o = newSnapTable(t, "snapshot-origin", 128, orig)
	c.a = newSnapTable(t, "snapshot", 128, orig, cow, "P", "8").resume()
	c.b = newSnapTable(t, "snapshot", 128, orig, cow, "P", "8")
	c.o.mustWrite(make([]byte, reloadChunk), reloadChunk, 0)
	return c
}

// checkB fails unless b reads the origin's old data in chunks [0, n).
func (c *reloadCase) checkB(t *testing.T, n int64) {
	t.Helper()
	if got, want := c.b.mustRead(0, n*reloadChunk), c.before[:n*reloadChunk]; !bytes.Equal(got, want) {
		t.Fatalf("the new snapshot differs from the origin's old data at byte %d", firstDiff(got, want))
	}
}

// A snapshot resumed after another snapshot over its COW left the origin
// (a table destroyed after this one's New: it may have committed more)
// reads the COW's metadata again, and origin writes go on meanwhile: the
// read used to run under the origin's lock, taken exclusively, so every
// origin write over that origin waited for it, for a remote COW that does
// not answer until its timeout. The read is done in PreResume, or in
// Resume when the other snapshot left between the two; both are tried.
// The snapshot still sees the exceptions the one that left added after
// its New.
func TestSnapshotResumeReadsOutsideOriginLock(t *testing.T) {
	for _, name := range []string{"preresume", "resume"} {
		t.Run(name, func(t *testing.T) {
			c := newReloadCase(t, 12)
			b := c.b
			c.a.destroy() // not a handover: b must read the COW again
			c.shut()
			resumed := make(chan struct{})
			go func() {
				defer close(resumed)
				r := b.tg.(Resumer)
				if name == "preresume" {
					if err := r.PreResume(context.Background()); err != nil {
						t.Error(err)
					}
				}
				r.Resume(context.Background())
			}()
			t.Cleanup(func() { c.open(); <-resumed })
			testkit.WaitFor(t, 10*time.Second, "the resume to read the gated COW", func() bool { return c.m.Gated() > 0 })
			wrote := make(chan struct{})
			go func() {
				defer close(wrote)
				if err := c.o.tg.WriteAt(context.Background(), make([]byte, reloadChunk), 5*reloadChunk, 0); err != nil {
					t.Error(err)
				}
			}()
			t.Cleanup(func() { c.open(); <-wrote })
			testkit.WaitFor(t, 10*time.Second, "the origin write during the resume's read", func() bool { return done(wrote) })
			if done(resumed) {
				t.Fatal("the resume ended while the COW's gate was shut")
			}
			c.open()
			<-resumed
			c.checkB(t, 2)
		})
	}
}

// A reload hands the old snapshot's store over in memory, as dm's
// handover swaps the stores: the new snapshot's resume reads nothing from
// the COW, which used to be read again whole under the origin's lock.
func TestSnapshotHandoverReadsNothing(t *testing.T) {
	c := newReloadCase(t, 13)
	c.shut()
	resumed := make(chan struct{})
	go func() { c.b.resume(); close(resumed) }()
	t.Cleanup(func() { c.open(); <-resumed })
	testkit.WaitFor(t, 10*time.Second, "the handover with the COW's gate shut", func() bool { return done(resumed) })
	c.open()
	if !c.a.tg.(*snapshot).handedOver.Load() || c.a.tg.Status(StatusInfo) != "Invalid" {
		t.Fatalf("the old snapshot after the handover: %q", c.a.tg.Status(StatusInfo))
	}
	c.o.mustWrite(make([]byte, reloadChunk), 2*reloadChunk, 0)
	c.a.destroy()
	c.checkB(t, 4)
}

// A COW read that fails when a snapshot must read its store again at a
// resume refuses the resume (PreResume), with nothing changed: the read
// used to be Resume's, whose error invalidated the snapshot for good while
// the resume said it succeeded. A retry once the COW reads again works.
func TestSnapshotPreResumeReadErrorRefuses(t *testing.T) {
	c := newReloadCase(t, 14)
	c.a.destroy()
	c.m.FailAt(0, syscall.EIO) // the header
	if err := c.b.tg.(Resumer).PreResume(context.Background()); err == nil {
		t.Fatal("PreResume succeeded while the COW's header read failed")
	}
	c.m.FailAt(-1, 0)
	if st := c.b.tg.Status(StatusInfo); st == "Invalid" {
		t.Fatal("a refused resume invalidated the snapshot")
	}
	c.b.resume()
	if st := c.b.tg.Status(StatusInfo); st == "Invalid" {
		t.Fatal("the snapshot is invalid after a resume that succeeded")
	}
	c.checkB(t, 2)
}
