package targets

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// Origin writes during a merge make no exception in the merging snapshot
// (dm: it is being deleted): a write to a chunk it never copied reads back
// through the merging device at once; a write to a chunk it has not merged
// yet is overwritten by the merge, which makes the origin the snapshot's.
func TestSnapMergeOriginWrites(t *testing.T) {
	f := newMergeFixture(t, 5, 1)
	o := newSnapTable(t, "snapshot-origin", uint64(f.size/512), f.orig)
	tb, m, release := f.mergeHeld()
	left := m.s.store.Load().remaining()
	fresh := bytes.Repeat([]byte{0xEE}, 512)
	o.mustWrite(fresh, 250*512, 0) // no exception there: above the fixture's writes
	copy(f.view[250*512:], fresh)
	var unmerged int64 = -1
	for c := int64(0); c < 200 && unmerged < 0; c++ {
		if _, ok := m.s.store.Load().lookup(uint64(c)); ok {
			unmerged = c
		}
	}
	if unmerged < 0 {
		t.Fatal("no unmerged chunk below the run merged first")
	}
	o.mustWrite(fresh, unmerged*512, 0)
	if got := m.s.store.Load().remaining(); got != left {
		t.Errorf("origin writes changed the merging snapshot's exceptions: %d, were %d", got, left)
	}
	if got := tb.mustRead(250*512, 512); !bytes.Equal(got, fresh) {
		t.Error("the merging device does not read an origin write to a chunk it never copied")
	}
	release()
	waitMerged(t, m)
	if got := readFile(t, f.orig); !bytes.Equal(got, f.view) {
		t.Fatalf("origin differs from the snapshot's view at byte %d", firstDiff(got, f.view))
	}
}

// A merge whose COW reads fail stops with dm's "Merge failed" status; the
// chunks it did not merge still read from the COW.
func TestSnapMergeFailed(t *testing.T) {
	f := newMergeFixture(t, 6, 1)
	_, m, release := f.mergeHeld()
	if err := os.Truncate(f.cow, 3*512); err != nil { // header and first area only
		t.Fatal(err)
	}
	release()
	<-m.done
	if st := m.Status(StatusInfo); st != "Merge failed" {
		t.Fatalf("status %q after a failed merge, want Merge failed", st)
	}
}

// A snapshot whose COW a snapshot-merge took over answers I/O with EIO and
// says Invalid, as dm leaves the source of a handover.
func TestSnapMergeTakesOverFromSnapshot(t *testing.T) {
	orig, _, s := originAndSnap(t, 64<<10, 12, 1<<20, "P", "8")
	s.mustWrite([]byte{1}, 0, 0)
	cow := s.tg.(*snapshot).cow.Path()
	mt := newSnapTable(t, "snapshot-merge", 128, orig, cow, "P", "8").resume()
	waitMerged(t, mt.tg.(*snapMerge))
	if _, err := s.read(0, 512); !errors.Is(err, ErrSnapInvalid) {
		t.Errorf("read of the handed-over snapshot: %v, want ErrSnapInvalid", err)
	}
	if st := s.tg.Status(StatusInfo); st != "Invalid" {
		t.Errorf("status of the handed-over snapshot %q, want Invalid", st)
	}
}

// discard_passdown_origin discards the range on the origin too, with no
// copy-out; without it the origin is left alone.
func TestSnapshotDiscardPassdown(t *testing.T) {
	for _, pass := range []bool{false, true} {
		orig := fillPattern(t, 64<<10, 13)
		feats := []string{"1", "discard_zeroes_cow"}
		if pass {
			feats = []string{"2", "discard_zeroes_cow", "discard_passdown_origin"}
		}
		args := append([]string{orig, tempFile(t, 1<<20), "P", "8"}, feats...)
		s := newSnapTable(t, "snapshot", 128, args...).resume()
		before := readFile(t, orig)
		if err := s.tg.Trim(t.Context(), 4096, 8192); err != nil {
			t.Fatal(err)
		}
		after := readFile(t, orig)
		changed := !bytes.Equal(after, before)
		if changed != pass {
			t.Errorf("passdown=%v: origin changed=%v", pass, changed)
		}
		if pass && !bytes.Equal(after[4096:12288], make([]byte, 8192)) {
			t.Errorf("passdown: the discarded origin range does not read as zeros")
		}
	}
}

// A write to a chunk being merged waits for the step, as dm queues it,
// then lands on the origin (the chunk has no exception any more).
func TestSnapMergeWriteWaitsForItsStep(t *testing.T) {
	f := newMergeFixture(t, 8, 1)
	in, resume := make(chan struct{}), make(chan struct{})
	var once bool
	tb, m := f.merge(f.orig, f.cow, nil)
	m.inStep = func() {
		if !once {
			once = true
			in <- struct{}{}
			<-resume
		}
	}
	release := sync.OnceFunc(func() { close(resume) })
	defer release()
	tb.resume()
	<-in // the first step holds the last exception's chunk, 239
	p := bytes.Repeat([]byte{0x77}, 100)
	done := make(chan error, 1)
	go func() { done <- tb.tg.WriteAt(t.Context(), p, 239*512+7, 0) }()
	locks := &m.s.entry.locks
	testkit.WaitFor(t, 10*time.Second, "the write to wait", func() bool { return locks.waiting() == 1 || len(done) > 0 })
	if len(done) > 0 {
		t.Fatal("a write to a chunk being merged went ahead of the merge")
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	copy(f.view[239*512+7:], p)
	waitMerged(t, m)
	if got := readFile(t, f.orig); !bytes.Equal(got, f.view) {
		t.Fatalf("origin differs from the snapshot's view with the write at byte %d", firstDiff(got, f.view))
	}
}

// A merge step copies its run of consecutive chunks back with one read of
// the COW device and one write of the origin, not one of each per chunk.
func TestSnapMergeCopyBackRuns(t *testing.T) {
	const chunk, n = 4096, 64
	orig, _, s := originAndSnap(t, n*chunk, 10, 4*n*chunk, "P", "8")
	p := make([]byte, n*chunk)
	pattern(p, 0, 63)
	s.mustWrite(p, 0, 0) // 64 consecutive pairs
	snap := s.tg.(*snapshot)
	st := snap.store.Load()
	nw, _ := st.lookup(0)
	calls := ioCalls(t)
	if err := copyBack(snap.origin, st, 0, int64(nw)*chunk, n*chunk); err != nil {
		t.Fatal(err)
	}
	expectCalls(t, "copy back of 64 chunks", calls, 1, 1)
	if got := readFile(t, orig); !bytes.Equal(got, p) {
		t.Fatalf("origin after the copy back differs at byte %d", firstDiff(got, p))
	}
}
