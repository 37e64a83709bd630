package targets

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// mergeFixture is an origin of 256 chunks with a snapshot A whose view
// differs from it in many chunks (its own writes, origin writes that made
// copies, and last one write of 40 whole chunks no other write touched: a run of consecutive pairs
// across metadata sectors), laid out over several metadata areas with
// 512-byte chunks (32 pairs an area), and what A reads.
type mergeFixture struct {
	t         *testing.T
	orig, cow string
	size      int64
	view      []byte // snapshot A's view: what the origin holds after the merge
	chunk     string // sectors
}

func newMergeFixture(t *testing.T, seed uint64, chunkSectors int64) *mergeFixture {
	f := &mergeFixture{t: t, size: 256 * chunkSectors * 512, chunk: fmt.Sprint(chunkSectors)}
	f.orig = fillPattern(t, f.size, 3)
	f.cow = tempFile(t, 2*f.size)
	o := newSnapTable(t, "snapshot-origin", uint64(f.size/512), f.orig)
	a := newSnapTable(t, "snapshot", uint64(f.size/512), f.orig, f.cow, "P", f.chunk).resume()
	f.view = readFile(t, f.orig)
	rng := rand.New(rand.NewPCG(seed, 9))
	for i := range 120 {
		off := rng.Int64N(f.size*3/4 - 3000) // below the run written last
		p := make([]byte, 1+rng.Int64N(3000))
		pattern(p, off, byte(i))
		if i%3 == 0 { // an origin write: A keeps the old data
			o.mustWrite(p, off, 0)
			continue
		}
		a.mustWrite(p, off, 0)
		copy(f.view[off:], p)
	}
	big := make([]byte, 40*chunkSectors*512)
	pattern(big, 0, 0x5a)
	a.mustWrite(big, 200*chunkSectors*512, 0)
	copy(f.view[200*chunkSectors*512:], big)
	if got := a.mustRead(0, f.size); !bytes.Equal(got, f.view) {
		t.Fatalf("fixture: snapshot view differs at byte %d", firstDiff(got, f.view))
	}
	a.destroy()
	o.destroy()
	return f
}

// merge builds a snapshot-merge table over the fixture's files (or others),
// with hook as its afterStep, not resumed.
func (f *mergeFixture) merge(orig, cow string, hook func()) (*snapTable, *snapMerge) {
	tb := newSnapTable(f.t, "snapshot-merge", uint64(f.size/512), orig, cow, "P", f.chunk)
	m := tb.tg.(*snapMerge)
	m.afterStep = hook
	return tb, m
}

// mergeHeld resumes a merge of the fixture's files that stops after its
// first step until release is called; a test's cleanup calls it too, so
// that a failed test never leaves the merge stuck in its hook.
func (f *mergeFixture) mergeHeld() (tb *snapTable, m *snapMerge, release func()) {
	stepped, resume := make(chan struct{}), make(chan struct{})
	var once bool
	tb, m = f.merge(f.orig, f.cow, func() {
		if !once {
			once = true
			stepped <- struct{}{}
			<-resume
		}
	})
	release = sync.OnceFunc(func() { close(resume) })
	f.t.Cleanup(release)
	tb.resume()
	<-stepped
	return tb, m, release
}

// waitMerged waits until the merge is done: the status reads allocated ==
// metadata, as dm's does (userspace's test for a finished merge).
func waitMerged(t *testing.T, m *snapMerge) {
	t.Helper()
	testkit.WaitForValue(t, 20*time.Second, "the merge to finish", func() (bool, string) {
		st := m.Status(StatusInfo)
		var a, tot, md uint64
		if _, err := fmt.Sscanf(st, "%d/%d %d", &a, &tot, &md); err != nil {
			return false, st
		}
		return a == md && m.s.store.Load().remaining() == 0, st
	})
	if m.failed.Load() || strings.Contains(m.Status(StatusInfo), "failed") {
		t.Fatal("merge failed")
	}
}
