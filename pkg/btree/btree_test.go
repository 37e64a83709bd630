package btree

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// randomLasts makes n strictly ascending last sectors, targets 1..maxLen long.
func randomLasts(r *rand.Rand, n int, maxLen uint64) []uint64 {
	lasts := make([]uint64, n)
	var next uint64
	for i := range lasts {
		next += 1 + r.Uint64N(maxLen)
		lasts[i] = next - 1
	}
	return lasts
}

// linearScan is the obviously right answer Lookup must agree with.
func linearScan(lasts []uint64, sector uint64) (int, bool) {
	for i, l := range lasts {
		if sector <= l {
			return i, true
		}
	}
	return 0, false
}

func TestLookupMatchesLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 2, 7, 8, 9, 63, 64, 72, 73, 81, 100, 511, 1000, 4097, 65536}
	if !testing.Short() {
		sizes = append(sizes, 1000000)
	}
	for _, n := range sizes {
		t.Run(fmt.Sprintf("targets=%d", n), func(t *testing.T) {
			lasts := randomLasts(r, n, 1000)
			ix, err := Build(lasts)
			if err != nil {
				t.Fatal(err)
			}
			if ix.Len() != n {
				t.Fatalf("Len = %d, want %d", ix.Len(), n)
			}
			check := func(sector uint64) {
				t.Helper()
				var want int
				var wantOK bool
				if n <= 4096 {
					want, wantOK = linearScan(lasts, sector)
				} else { // same answer as the scan, found faster for big tables
					want = sort.Search(n, func(i int) bool { return lasts[i] >= sector })
					wantOK = want < n
					if !wantOK {
						want = 0
					}
				}
				got, ok := ix.Lookup(sector)
				if got != want || ok != wantOK {
					t.Fatalf("Lookup(%d) = %d,%v want %d,%v", sector, got, ok, want, wantOK)
				}
			}
			// Every boundary: first and last sector of each target.
			prev := uint64(0)
			for _, l := range lasts {
				check(prev)
				check(l)
				prev = l + 1
			}
			check(lasts[n-1] + 1)
			check(MaxKey)
			for i := 0; i < 20000; i++ {
				check(r.Uint64N(lasts[n-1] + 2))
			}
			// A linear scan on a sample, even for the big tables.
			for i := 0; i < 50; i++ {
				s := r.Uint64N(lasts[n-1] + 2)
				want, wantOK := linearScan(lasts, s)
				if got, ok := ix.Lookup(s); got != want || ok != wantOK {
					t.Fatalf("Lookup(%d) = %d,%v; scan says %d,%v", s, got, ok, want, wantOK)
				}
			}
		})
	}
}

func TestBuildRefusesUnorderedKeys(t *testing.T) {
	for _, keys := range [][]uint64{{5, 5}, {10, 3}, {1, 2, 3, 3}} {
		if _, err := Build(keys); !errors.Is(err, ErrNotAscending) {
			t.Errorf("Build(%v) err = %v, want ErrNotAscending", keys, err)
		}
	}
}

func TestEmptyIndex(t *testing.T) {
	ix, err := Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.Lookup(0); ok {
		t.Fatal("empty index found sector 0")
	}
}

func TestNodesAreAligned(t *testing.T) {
	ix, err := Build(randomLasts(rand.New(rand.NewPCG(3, 4)), 5000, 10))
	if err != nil {
		t.Fatal(err)
	}
	// 5000 keys: 313 leaves, 20, 2, 1 nodes: depth 4.
	if ix.Depth() != 4 {
		t.Errorf("depth = %d, want 4", ix.Depth())
	}
	for l := range ix.Depth() {
		level := ix.level(l)
		if len(level)%KeysPerNode != 0 {
			t.Errorf("level %d has %d keys, not whole nodes", l, len(level))
		}
		if p := uintptr(unsafe.Pointer(&level[0])); p%nodeBytes != 0 {
			t.Errorf("level %d starts at %#x, not on a node boundary", l, p)
		}
	}
	leaves := ix.level(ix.Depth() - 1)
	for i := 5000; i < len(leaves); i++ {
		if leaves[i] != MaxKey {
			t.Errorf("leaf padding %d = %d, want MaxKey", i, leaves[i])
		}
	}
}

// BenchmarkLookup times lookups of random sectors, drawn from an array made
// beforehand so that the RNG is not timed. Besides ns/op (wall time) it
// reports cpu-ns/op, the benchmark thread's own CPU time per lookup: on a
// machine shared with other work, wall time also counts the time the
// thread spent waiting for a CPU.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 1000, 1000000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(5, 6))
			lasts := randomLasts(r, n, 1000)
			ix, err := Build(lasts)
			if err != nil {
				b.Fatal(err)
			}
			probes := make([]uint64, 1<<16)
			for i := range probes {
				probes[i] = r.Uint64N(lasts[n-1] + 1)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := threadCPU(b)
			b.ResetTimer()
			sink := 0
			for i := 0; i < b.N; i++ {
				k, _ := ix.Lookup(probes[i&(len(probes)-1)])
				sink += k
			}
			b.StopTimer()
			b.ReportMetric(float64(threadCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			_ = sink
		})
	}
}

// threadCPU is the calling thread's CPU time in nanoseconds.
func threadCPU(b *testing.B) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return ts.Nano()
}
