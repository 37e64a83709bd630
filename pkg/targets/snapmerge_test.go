package targets

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestSnapMergeCheck(t *testing.T) {
	tp, err := Lookup("snapshot-merge")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Check([]string{"o", "c", "n", "8"}, 8); !errors.Is(err, ErrSnapStoreType) {
		t.Errorf("transient store: %v, want ErrSnapStoreType", err)
	}
	got, err := tp.Check([]string{"o", "c", "po", "08"}, 8)
	if err != nil || fmt.Sprint(got) != "[o c PO 8]" {
		t.Errorf("canonical: %v %v", got, err)
	}
}

// The merge runs in the background while the merging device takes reads
// and writes between its steps: every read sees the snapshot's view with
// the writes so far, and when the merge is done the origin holds exactly
// that, the status says so as dm's does (allocated == metadata), and a
// second snapshot of the origin, taken before the merge, still reads what
// it did: the merge's origin writes copied out to it first.
func TestSnapMergeModelMidIO(t *testing.T) {
	f := newMergeFixture(t, 1, 1)
	bCow := tempFile(t, 4*f.size)
	b := newSnapTable(t, "snapshot", uint64(f.size/512), f.orig, bCow, "P", "8").resume()
	bView := readFile(t, f.orig)
	stepped, resume := make(chan struct{}), make(chan struct{})
	quit := make(chan struct{}) // a failed test must not leave the merge stuck in its hook
	tb, m := f.merge(f.orig, f.cow, func() {
		select {
		case stepped <- struct{}{}:
		case <-quit:
			return
		case <-resume: // closed: the test stopped stepping
			return
		}
		select {
		case <-resume:
		case <-quit:
		}
	})
	t.Cleanup(func() { close(quit) }) // runs before the table's destroy
	tb.resume()
	total := m.total.Load()
	if total == 0 {
		t.Fatal("no exceptions to merge")
	}
	rng := rand.New(rand.NewPCG(2, 2))
	steps := 0
	for ; steps < 10000; steps++ {
		finished := false
		select {
		case <-stepped:
		case <-m.done:
			finished = true
		}
		if finished || m.s.store.Load().remaining() == 0 {
			close(resume)
			break
		}
		for i := range 3 {
			off := rng.Int64N(f.size - 1)
			p := make([]byte, 1+rng.Int64N(min(2000, f.size-off)))
			pattern(p, off, byte(100+steps+i))
			tb.mustWrite(p, off, 0)
			copy(f.view[off:], p)
			roff := rng.Int64N(f.size - 1)
			n := 1 + rng.Int64N(min(4000, f.size-roff))
			if got := tb.mustRead(roff, n); !bytes.Equal(got, f.view[roff:roff+n]) {
				t.Fatalf("step %d: merging device read %d@%d differs at %d", steps, n, roff, firstDiff(got, f.view[roff:roff+n]))
			}
		}
		resume <- struct{}{}
	}
	waitMerged(t, m)
	if steps < 2 {
		t.Errorf("merge done in %d steps: no I/O between steps", steps)
	}
	if got := readFile(t, f.orig); !bytes.Equal(got, f.view) {
		t.Fatalf("origin after the merge differs from the snapshot's view at byte %d", firstDiff(got, f.view))
	}
	if got := b.mustRead(0, f.size); !bytes.Equal(got, bView) {
		t.Fatalf("the other snapshot's view changed at byte %d", firstDiff(got, bView))
	}
	if st := m.Status(StatusInfo); st != fmt.Sprintf("2/%d 2", 2*f.size/512) {
		t.Errorf("status after the merge %q, want dm's 2/%d 2", st, 2*f.size/512)
	}
	if s := m.SnapshotStats(); s.MergeRemaining != 0 || s.MergeTotal != total {
		t.Errorf("merge progress %d/%d, want 0/%d", s.MergeRemaining, s.MergeTotal, total)
	}
}

// The merge runs freely while four writers, each in its own quarter of
// the device, write and read back at random: reads see the writes, and the
// origin ends as the snapshot's view with every write in it. (The race
// detector watches the merge against the I/O here.)
func TestSnapMergeConcurrentIO(t *testing.T) {
	f := newMergeFixture(t, 7, 1)
	tb, m := f.merge(f.orig, f.cow, nil)
	tb.resume()
	q := f.size / 4
	errs := make(chan error, 4)
	for w := range int64(4) {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 40 {
				off := w*q + rng.Int64N(q-1)
				p := make([]byte, 1+rng.Int64N(min(1500, w*q+q-off)))
				pattern(p, off, byte(w*50+int64(i)))
				if err := tb.tg.WriteAt(t.Context(), p, off, 0); err != nil {
					errs <- err
					return
				}
				copy(f.view[off:], p) // this writer's quarter only
				got := make([]byte, len(p))
				if err := tb.tg.ReadAt(t.Context(), got, off); err != nil || !bytes.Equal(got, p) {
					errs <- fmt.Errorf("writer %d: read back %d@%d: %v (equal %v)", w, len(p), off, err, bytes.Equal(got, p))
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitMerged(t, m)
	if got := readFile(t, f.orig); !bytes.Equal(got, f.view) {
		t.Fatalf("origin differs from the snapshot's view with the writes at byte %d", firstDiff(got, f.view))
	}
}
