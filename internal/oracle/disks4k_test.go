package oracle

import (
	"slices"
	"strings"
	"testing"
)

// A case's $N in FourK take the side's 4 KiB disks in FourK's order; any
// other $N stays the N-th 512-byte disk, wherever the 4K disks sit in the
// side's list.
func TestPickDisks(t *testing.T) {
	sizes := []int64{512, 512, 512, 4096, 4096}
	for _, tc := range []struct {
		n     int
		fourK []int
		want  []int
		err   string
	}{
		{n: 3, want: []int{0, 1, 2}},
		{n: 2, fourK: []int{1}, want: []int{0, 3}},
		{n: 2, fourK: []int{1, 0}, want: []int{4, 3}},
		{n: 3, fourK: []int{0, 1, 2}, err: "4 KiB blocks; the side has 2"},
		{n: 4, fourK: []int{0}, err: "$3 is to be a disk of 512-byte blocks; the side has 3"},
	} {
		got, err := pickDisks(sizes, tc.n, tc.fourK)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("pickDisks(%d, %v) = %v, %v; want an error with %q", tc.n, tc.fourK, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("pickDisks(%d, %v) = %v, %v; want %v", tc.n, tc.fourK, got, err, tc.want)
		}
	}
}

// A view renames the chosen disks $0, $1, ... (and their other names),
// and a side that has no 4 KiB disk cannot run a FourK case.
func TestViewOf(t *testing.T) {
	f := newFake(t, "dm", 4096)
	rn := &Runner{A: f, B: f}
	v, err := rn.viewOf(f, 1, nil)
	if err != nil || !slices.Equal(v.Disks(), []string{f.disk}) || v.DevNames()[f.disk] != 0 {
		t.Fatalf("view of a 512 disk: %v, %v", v, err)
	}
	if !isDM(diskView{Side: &DM{}}) || isDM(v) {
		t.Errorf("isDM does not see through a view")
	}
	if _, err := rn.useFourK(1, []int{0}); err == nil {
		t.Errorf("a side of regular files (512) gave a 4K disk")
	}
	if got := devCount("0 8 linear $2 0\n8 8 linear $0 0"); got != 3 {
		t.Errorf("devCount = %d, want 3", got)
	}
}
