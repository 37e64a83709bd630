package targets

import (
	"bytes"
	"os"
	"testing"
)

// A merge stopped at a commit boundary (its table destroyed mid-merge, as
// a kill between steps leaves the files) goes on from there in a new
// table over the same files, and ends with the origin equal to the
// snapshot's view.
func TestSnapMergeResumesAfterDestroy(t *testing.T) {
	f := newMergeFixture(t, 3, 1)
	steps := make(chan struct{}, 1000)
	tb, m := f.merge(f.orig, f.cow, func() { steps <- struct{}{} })
	tb.resume()
	for range 3 {
		<-steps
	}
	tb.destroy() // halts at a commit boundary
	left := m.s.store.Load().remaining()
	if left == 0 {
		t.Fatal("merge finished before the destroy: nothing left to resume")
	}
	tb2, m2 := f.merge(f.orig, f.cow, nil)
	if got := m2.s.store.Load().remaining(); got != left {
		t.Fatalf("reopened store holds %d exceptions, the merge left %d", got, left)
	}
	tb2.resume()
	waitMerged(t, m2)
	if got := readFile(t, f.orig); !bytes.Equal(got, f.view) {
		t.Fatalf("origin differs from the snapshot's view at byte %d", firstDiff(got, f.view))
	}
}

// A crash in the middle of a merge's metadata write leaves the area with
// some of its sectors new and some old. Whichever part made it, the merge
// reopened from those files finishes with the origin equal to the
// snapshot's view: the pairs still there are merged again, which is
// harmless, and the origin data of those that are gone was synced first.
// The fixture's last write, a run of 40 pairs over two sectors of one
// area, is the first step's (the merge starts from the last exception).
func TestSnapMergeTornCommit(t *testing.T) {
	for _, newFirst := range []bool{true, false} {
		f := newMergeFixture(t, 4, 8)
		cowBefore := readFile(t, f.cow)
		var origAfter, cowAfter []byte
		tb, m := f.merge(f.orig, f.cow, func() {
			if cowAfter == nil {
				origAfter, cowAfter = readFile(t, f.orig), readFile(t, f.cow)
			}
		})
		tb.resume()
		waitMerged(t, m)
		tb.destroy()
		ds := diffSectors(cowBefore, cowAfter)
		if len(ds) < 2 {
			t.Fatalf("the first merge step wrote %d sectors of metadata, want a run over 2 or more", len(ds))
		}
		torn := append([]byte(nil), cowBefore...)
		part := ds[:len(ds)/2]
		if !newFirst {
			part = ds[len(ds)/2:]
		}
		for _, sec := range part {
			copy(torn[sec*512:(sec+1)*512], cowAfter[sec*512:])
		}
		orig, cow := writeTemp(t, origAfter), writeTemp(t, torn)
		tb2, m2 := f.merge(orig, cow, nil)
		tb2.resume()
		waitMerged(t, m2)
		if got := readFile(t, orig); !bytes.Equal(got, f.view) {
			t.Fatalf("newFirst=%v: origin differs from the snapshot's view at byte %d", newFirst, firstDiff(got, f.view))
		}
	}
}

// diffSectors lists the 512-byte sectors where a and b differ.
func diffSectors(a, b []byte) []int {
	var out []int
	for s := 0; (s+1)*512 <= len(a); s++ {
		if !bytes.Equal(a[s*512:(s+1)*512], b[s*512:(s+1)*512]) {
			out = append(out, s)
		}
	}
	return out
}

func writeTemp(t *testing.T, b []byte) string {
	p := tempFile(t, 0)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
