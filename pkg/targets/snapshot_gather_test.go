package targets

import (
	"slices"
	"sync"
	"testing"
)

// consumed drops the buffers a partial preadv or pwritev filled and cuts
// the one it stopped in.
func TestConsumed(t *testing.T) {
	lens := func(bufs [][]byte) []int {
		var l []int
		for _, b := range bufs {
			l = append(l, len(b))
		}
		return l
	}
	for _, c := range []struct {
		n    int
		want []int
	}{
		{0, []int{3, 5, 2}},
		{2, []int{1, 5, 2}},
		{3, []int{5, 2}},
		{4, []int{4, 2}},
		{8, []int{2}},
		{9, []int{1}},
		{10, nil},
	} {
		bufs := [][]byte{make([]byte, 3), make([]byte, 5), make([]byte, 2)}
		if got := lens(consumed(bufs, c.n)); !slices.Equal(got, c.want) {
			t.Errorf("consumed(3,5,2 bytes, %d) left %v, want %v", c.n, got, c.want)
		}
	}
}

// Writes made at once by several goroutines, each over 64 chunks of its
// own with no exception yet, each get 64 consecutive COW chunks
// (cowStore.prepareRun): taken one lock at a time, two writers' chunks
// could alternate, and each write and a later read of it would be cut
// into many calls.
func TestSnapshotRunAllocatedTogether(t *testing.T) {
	const chunk, per, writers, rounds = 4096, 64, 4, 16
	const size = writers * rounds * per * chunk
	_, _, s := originAndSnap(t, size, 14, 2*size, "N", "8")
	snap := s.tg.(*snapshot)
	p := make([]byte, per*chunk)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range rounds {
				if err := s.tg.WriteAt(t.Context(), p, int64(i*writers+g)*per*chunk, 0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := snap.store.Load()
	for w := range uint64(writers * rounds) {
		first, _ := st.lookup(w * per)
		for c := range uint64(per) {
			if nw, ok := st.lookup(w*per + c); !ok || nw != first+c {
				t.Fatalf("write %d: chunk %d at COW chunk %d (mapped %v), want %d", w, c, nw, ok, first+c)
			}
		}
	}
}
