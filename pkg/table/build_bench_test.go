package table

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
	return strings.Clone(sb.String()) // exactly sized: a table that keeps it keeps no slack

}

// BenchmarkBuild times building a table from text (parse, open, index),
// and reports what the table keeps on the heap per target: HeapAlloc after
// a GC with only the table alive, the text included if the table holds on
// to it, against HeapAlloc after a GC before the text existed. cpu-ms/op is
// the process's CPU time (user and system, GC included) per build: on a
// shared machine wall time also counts waiting for a CPU.
func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{1000, 1000000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			text := linearText(b, n)
			b.SetBytes(int64(len(text)))
			var cpu time.Duration
			for b.Loop() {
				cpu0 := processCPU(b)
				tb := mustTable(b, text)
				cpu += processCPU(b) - cpu0
				b.StopTimer()
				tb.destroy(discardLog(), false)
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
			b.ReportMetric(heapPerTarget(b, n), "bytes/target")
		})
	}
}

// processCPU is the CPU time the process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

// BenchmarkVerbsWith1M times what a daemon does to a device whose live
// table has a million targets: suspend and resume it, give its table text
// (Text, and WriteText as a streamed `gdm table` would), and a random 4 KiB
// read through it (tmpfs, holes).
func BenchmarkVerbsWith1M(b *testing.B) {
	const n = 1000000
	text := linearText(b, n)
	d := newLiveDevice(b, text)
	defer d.Close()
	ctx := context.Background()
	b.Run("suspend-resume", func(b *testing.B) {
		for b.Loop() {
			if err := d.Suspend(ctx, false); err != nil {
				b.Fatal(err)
			}
			if err := d.Resume(ctx, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	t := d.acquire(Live)
	defer t.Put()
	// A table whose text was not canonical (here, a comment) has its text
	// made again, line by line.
	remade := mustTable(b, "# made by hand\n"+text)
	defer remade.destroy(discardLog(), false)
	for _, c := range []struct {
		name string
		t    *Table
	}{{"", t}, {"-remade", remade}} {
		b.Run("text"+c.name, func(b *testing.B) {
			for b.Loop() {
				if len(c.t.Text()) != len(text) {
					b.Fatal("text differs")
				}
			}
		})
		b.Run("write-text"+c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.t.WriteText(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	offsets := make([]int64, 4096)
	r := rand.New(rand.NewPCG(2, 2))
	for i := range offsets {
		offsets[i] = r.Int64N(n*8*512/4096) * 4096
	}
	b.Run("read4k", func(b *testing.B) { benchDeviceRead(b, d, offsets) })
}
