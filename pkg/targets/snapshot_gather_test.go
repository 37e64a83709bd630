package targets

import (
	"slices"
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
