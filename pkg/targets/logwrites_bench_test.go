package targets

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// What logging costs: the same writes through linear and through
// log-writes over files on tmpfs (/dev/shm, so the disk does not set the
// pace), a flush every benchFlushEvery writes. Each sub-benchmark runs
// b.N writes on each target and reports both times per write and their
// ratio (logw/linear). The log is started over when it fills, outside the
// timing, so that logging never stops.

const (
	benchDevBytes   = 64 << 20
	benchLogBytes   = 256 << 20
	benchFlushEvery = 64
)

func BenchmarkLogWritesVsLinear(b *testing.B) {
	b.Run("4KiB-random", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 1))
		benchVsLinear(b, 4096, func(int) int64 { return rng.Int64N(benchDevBytes/4096) * 4096 })
	})
	b.Run("1MiB-sequential", func(b *testing.B) {
		benchVsLinear(b, 1<<20, func(i int) int64 { return int64(i) % (benchDevBytes >> 20) << 20 })
	})
}

func benchVsLinear(b *testing.B, size int, at func(i int) int64) {
	dir := "/dev/shm"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = b.TempDir()
	}
	dir, err := os.MkdirTemp(dir, "gdm-bench-logw")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dev := testkit.Sparse(b, dir, "dev", benchDevBytes)
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i)
	}
	ctx := context.Background()
	b.SetBytes(int64(size))

	set := NewDevSet(false)
	defer set.Close()
	lin, err := newLinear([]string{dev, "0"}, benchDevBytes/SectorSize, set)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if err := lin.WriteAt(ctx, p, at(i), 0); err != nil {
			b.Fatal(err)
		}
		if i%benchFlushEvery == benchFlushEvery-1 {
			lin.(*linear).dev.Sync()
		}
	}
	linNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)

	lw, logPath, logSet := benchLogWrites(b, dir, dev, nil, "", nil)
	var logged time.Duration
	start = time.Now()
	for i := range b.N {
		if err := lw.WriteAt(ctx, p, at(i), 0); err != nil {
			b.Fatal(err)
		}
		if i%benchFlushEvery == benchFlushEvery-1 {
			lw.FlushRequest(ctx)
			lw.log.dev.Sync()
			if _, next, _ := lw.log.state(); next > benchLogBytes/SectorSize/2 {
				logged += time.Since(start) // start the log over, untimed
				lw, logPath, logSet = benchLogWrites(b, dir, dev, lw, logPath, logSet)
				start = time.Now()
			}
		}
	}
	logged += time.Since(start)
	b.StopTimer()
	logSet.Close()
	lwNs := float64(logged.Nanoseconds()) / float64(b.N)
	b.ReportMetric(linNs, "linear-ns/write")
	b.ReportMetric(lwNs, "logw-ns/write")
	b.ReportMetric(lwNs/linNs, "logw/linear")
}

// benchLogWrites makes a live log-writes target over dev with a fresh log,
// after closing old's devices (and removing its log) if there is one.
func benchLogWrites(b *testing.B, dir, dev string, old *logWrites, oldLog string, oldSet *DevSet) (*logWrites, string, *DevSet) {
	if old != nil {
		oldSet.Close() // no destroy: the log is thrown away
		os.Remove(oldLog)
	}
	log, err := os.CreateTemp(dir, "log")
	if err != nil {
		b.Fatal(err)
	}
	log.Truncate(benchLogBytes)
	log.Close()
	set := NewDevSet(false)
	tg, err := newLogWrites([]string{dev, log.Name()}, benchDevBytes/SectorSize, set)
	if err != nil {
		b.Fatal(err)
	}
	lw := tg.(*logWrites)
	lw.Resume(context.Background())
	return lw, log.Name(), set
}
