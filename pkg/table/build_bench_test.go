package table

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// linearText is a table of n linear targets of 8 sectors each over one
// backing file, as a new user writes a big table: about 46 bytes a line.
func linearText(b *testing.B, n int) string {
	const length = 8
	dir := benchDir(b)
	backing := testkit.Sparse(b, dir, "backing", int64(n)*length*512)
	var sb strings.Builder
	sb.Grow(n * (len(backing) + 32))
	for i := range n {
		s := strconv.Itoa(i * length)
		sb.WriteString(s)
		sb.WriteString(" 8 linear ")
		sb.WriteString(backing)
		sb.WriteByte(' ')
		sb.WriteString(s)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// BenchmarkBuild times building a table from text (parse, open, index),
// and reports what the table keeps on the heap per target: HeapAlloc after
// a GC with only the table alive, the text included if the table holds on
// to it, against HeapAlloc after a GC before the text existed.
func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{1000, 1000000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			text := linearText(b, n)
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				tb := mustTable(b, text)
				b.StopTimer()
				tb.destroy(discardLog(), false)
				b.StartTimer()
			}
			b.ReportMetric(heapPerTarget(b, n), "bytes/target")
		})
	}
}

// heapPerTarget builds one more table of n linear targets and returns the
// heap it keeps alive, per target.
func heapPerTarget(b *testing.B, n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	text := linearText(b, n)
	tb := mustTable(b, text) // text is dead from here: kept only if tb keeps it
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(tb)
	tb.destroy(discardLog(), false)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}
