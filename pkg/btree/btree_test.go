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

// skewedLasts makes n ascending last sectors of mostly tiny targets and a
// few huge ones, so that nodes of one level differ in the keys they need.
func skewedLasts(r *rand.Rand, n int) []uint64 {
	lasts := make([]uint64, n)
	var next uint64
	for i := range lasts {
		if r.IntN(100) == 0 {
			next += 1 + r.Uint64N(1<<36)
		} else {
			next += 1 + r.Uint64N(8)
		}
		lasts[i] = next - 1
	}
	return lasts
}

// The distributions of target lengths the property test runs over: each
// makes a different mix of 16-, 32- and 64-bit levels.
var distributions = map[string]func(r *rand.Rand, n int) []uint64{
	"len<=1000":   func(r *rand.Rand, n int) []uint64 { return randomLasts(r, n, 1000) },
	"len<=2^20":   func(r *rand.Rand, n int) []uint64 { return randomLasts(r, n, 1<<20) },
	"len<=2^62/n": func(r *rand.Rand, n int) []uint64 { return randomLasts(r, n, 1<<62/uint64(n)) },
	"skewed":      skewedLasts,
	"len<=2^16+":  func(r *rand.Rand, n int) []uint64 { return randomLasts(r, n, 1<<16+1<<12) },
}

func TestLookupMatchesLinearScan(t *testing.T) {
	for name, lastsOf := range distributions {
		sizes := []int{1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 72, 73, 81, 100, 255, 256, 257, 511, 1000, 4097, 65536}
		if !testing.Short() && name == "len<=1000" {
			sizes = append(sizes, 1000000)
		}
		t.Run(name, func(t *testing.T) { testLookup(t, sizes, lastsOf) })
	}
}

func testLookup(t *testing.T, sizes []int, lastsOf func(r *rand.Rand, n int) []uint64) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range sizes {
		t.Run(fmt.Sprintf("targets=%d", n), func(t *testing.T) {
			lasts := lastsOf(r, n)
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
			check(^uint64(0))
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

// TestKeyWidths checks the layout: levels take the narrowest keys their
// spans allow, groups start aligned, levels are whole nodes, and padding is
// the group's largest key.
func TestKeyWidths(t *testing.T) {
	cases := []struct {
		name     string
		n        int
		maxLen   uint64
		n64, n32 int // levels of 64 and 32 bits; the rest are 16
	}{
		// 5000 keys: 313 leaves, 20, 2, 1 nodes. Spans: < 5000*10 in all.
		{"small targets", 5000, 10, 0, 0},
		// Leaves span < 16*1000, the next level < 256*1000.
		{"bench targets", 5000, 1000, 0, 3},
		// Any two keys may be 2^40 apart: only 64 bits will do.
		{"huge targets", 5000, 1 << 40, 4, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ix, err := Build(randomLasts(rand.New(rand.NewPCG(3, 4)), c.n, c.maxLen))
			if err != nil {
				t.Fatal(err)
			}
			if ix.Depth() != 4 || ix.n64 != c.n64 || ix.n32 != c.n32 {
				t.Fatalf("depth %d, %d 64-bit and %d 32-bit levels; want 4, %d, %d", ix.Depth(), ix.n64, ix.n32, c.n64, c.n32)
			}
			checkGroup(t, ix.k64, ix.start[:ix.n64], c.n)
			checkGroup(t, ix.k32, ix.start[ix.n64:ix.n64+ix.n32], c.n)
			checkGroup(t, ix.k16, ix.start[ix.n64+ix.n32:ix.depth], c.n)
		})
	}
}

// TestSpanBoundaries puts a node's span of sectors on each side of what 16
// and 32 bits hold, where a key one bit too narrow would wrap.
func TestSpanBoundaries(t *testing.T) {
	for _, span := range []uint64{1<<16 - 2, 1<<16 - 1, 1 << 16, 1<<16 + 1, 1<<32 - 1, 1 << 32, 1<<32 + 1} {
		var lasts []uint64
		for i := range uint64(15) {
			lasts = append(lasts, i)
		}
		lasts = append(lasts, span) // the first leaf spans [0, span]
		for i := range uint64(40) {
			lasts = append(lasts, span+1+i)
		}
		ix, err := Build(lasts)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lasts {
			for _, s := range []uint64{l - 1, l, l + 1} {
				want, wantOK := linearScan(lasts, s)
				if got, ok := ix.Lookup(s); got != want || ok != wantOK {
					t.Fatalf("span %d: Lookup(%d) = %d,%v want %d,%v", span, s, got, ok, want, wantOK)
				}
			}
		}
	}
}

// checkGroup checks one group of levels: aligned, whole nodes, and (if it
// holds the leaves) padded past the n keys with the type's largest value.
func checkGroup[K key](t *testing.T, keys []K, starts []int, n int) {
	t.Helper()
	if len(starts) == 0 {
		if keys != nil {
			t.Errorf("%T: %d keys for no level", keys, len(keys))
		}
		return
	}
	if p := uintptr(unsafe.Pointer(&keys[0])); p%align != 0 {
		t.Errorf("%T starts at %#x, not aligned", keys, p)
	}
	for _, s := range append(starts, len(keys)) {
		if s%KeysPerNode != 0 {
			t.Errorf("%T: a level starts or ends at %d, not on a node", keys, s)
		}
	}
	leaves := keys[starts[len(starts)-1]:]
	if len(leaves) < n {
		return // the leaves are in a narrower group
	}
	for i := n; i < len(leaves); i++ {
		if leaves[i] != ^K(0) {
			t.Errorf("%T leaf padding %d = %d", keys, i, leaves[i])
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
