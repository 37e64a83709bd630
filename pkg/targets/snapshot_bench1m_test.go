package targets

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkSnapshot1M: 1 MiB requests over 4 KiB chunks (a P store), the
// size a file copy sends: a snapshot's first write to 256 chunks
// (snap-first), its rewrite of chunks it has (snap-rewrite), its read of
// chunks it has not (snap-read), an origin write that copies 256 chunks out
// (origin-first), a read and a rewrite of chunks a 4 KiB random write
// scattered over the COW device (scatter-read, scatter-rewrite), a first
// write over chunks of which one in 8 had such a write (sprinkled-first:
// 30-odd runs of new exceptions between single mapped chunks), a read and
// a rewrite of what such writes leave (sprinkled-read, sprinkled-rewrite:
// the new chunks of each MiB end to end on the COW device, the old ones
// scattered), and the same write to a linear target (linear) for scale.
// cpu-ns/op is the process's CPU time (user+system), which a loaded
// machine skews less than wall time.
func BenchmarkSnapshot1M(b *testing.B) {
	const mib, size = 1 << 20, 32 << 20
	p := make([]byte, mib)
	pattern(p, 0, 9)
	ctx := context.Background()
	setup := func(b *testing.B) (o, s *snapTable) {
		_, o, s = originAndSnap(b, size, 1, 2*size, "P", "8")
		return o, s
	}
	// sprinkled is setup with one chunk in 8 written by a 4 KiB write, at
	// random, as fio's 4k random write job leaves a snapshot for a while.
	sprinkled := func(b *testing.B) (o, s *snapTable) {
		o, s = setup(b)
		for _, c := range rand.New(rand.NewPCG(5, 6)).Perm(int(size / 4096))[:size/4096/8] {
			s.mustWrite(p[:4096], int64(c)*4096, 0)
		}
		return o, s
	}
	// fresh runs w over each MiB of a new origin and snapshot in turn.
	fresh := func(b *testing.B, setup func(*testing.B) (o, s *snapTable), w func(o, s *snapTable, off int64) error) {
		o, s := setup(b)
		i := 0
		var setupCPU time.Duration
		cpu := cpuMeter(b)
		for b.Loop() {
			if i == size/mib {
				b.StopTimer()
				t0 := processCPU(b)
				o.destroy()
				s.destroy()
				o, s = setup(b)
				setupCPU += processCPU(b) - t0
				i = 0
				b.StartTimer()
			}
			if err := w(o, s, int64(i)*mib); err != nil {
				b.Fatal(err)
			}
			i++
		}
		cpu(setupCPU)
	}
	b.Run("variant=snap-first", func(b *testing.B) {
		fresh(b, setup, func(_, s *snapTable, off int64) error { return s.tg.WriteAt(ctx, p, off, 0) })
	})
	b.Run("variant=sprinkled-first", func(b *testing.B) {
		fresh(b, sprinkled, func(_, s *snapTable, off int64) error { return s.tg.WriteAt(ctx, p, off, 0) })
	})
	b.Run("variant=origin-first", func(b *testing.B) {
		fresh(b, setup, func(o, _ *snapTable, off int64) error { return o.tg.WriteAt(ctx, p, off, 0) })
	})
	b.Run("variant=origin-sprinkled", func(b *testing.B) {
		fresh(b, sprinkled, func(o, _ *snapTable, off int64) error { return o.tg.WriteAt(ctx, p, off, 0) })
	})
	b.Run("variant=snap-rewrite", func(b *testing.B) {
		_, s := setup(b)
		for off := int64(0); off < size; off += mib {
			s.mustWrite(p, off, 0)
		}
		benchEachMiB(b, size, func(off int64) error { return s.tg.WriteAt(ctx, p, off, 0) })
	})
	b.Run("variant=snap-read", func(b *testing.B) {
		_, s := setup(b)
		q := make([]byte, mib)
		benchEachMiB(b, size, func(off int64) error { return s.tg.ReadAt(ctx, q, off) })
	})
	b.Run("variant=scatter-read", func(b *testing.B) {
		s := scattered(b, size, p)
		q := make([]byte, mib)
		benchEachMiB(b, size, func(off int64) error { return s.tg.ReadAt(ctx, q, off) })
	})
	b.Run("variant=scatter-rewrite", func(b *testing.B) {
		s := scattered(b, size, p)
		benchEachMiB(b, size, func(off int64) error { return s.tg.WriteAt(ctx, p, off, 0) })
	})
	// sprinkled-read and -rewrite: each MiB of a sprinkled snapshot then
	// written by one 1 MiB write, whose new chunks lie end to end on the
	// COW device between the sprinkled ones (gathered I/O).
	b.Run("variant=sprinkled-read", func(b *testing.B) {
		s := sprinkledWritten(b, sprinkled, size, p)
		q := make([]byte, mib)
		benchEachMiB(b, size, func(off int64) error { return s.tg.ReadAt(ctx, q, off) })
	})
	b.Run("variant=sprinkled-rewrite", func(b *testing.B) {
		s := sprinkledWritten(b, sprinkled, size, p)
		benchEachMiB(b, size, func(off int64) error { return s.tg.WriteAt(ctx, p, off, 0) })
	})
	b.Run("variant=linear", func(b *testing.B) {
		l := newSnapTable(b, "linear", size/512, fillPattern(b, size, 2), "0")
		benchEachMiB(b, size, func(off int64) error { return l.tg.WriteAt(ctx, p, off, 0) })
	})
}

// scattered is a snapshot (N store, 4 KiB chunks) whose every chunk was
// written once by a 4 KiB write, in a random order, as fio's 4k random
// write job leaves one: consecutive chunks sit at random COW chunks, so a
// 1 MiB request over them is 256 runs of one chunk.
func scattered(b *testing.B, size int64, p []byte) *snapTable {
	_, _, s := originAndSnap(b, size, 1, 2*size, "N", "8")
	for _, c := range rand.New(rand.NewPCG(1, 2)).Perm(int(size / 4096)) {
		s.mustWrite(p[:4096], int64(c)*4096, 0)
	}
	return s
}

// sprinkledWritten is sprinkled's snapshot with each MiB then written by
// one 1 MiB write of p.
func sprinkledWritten(b *testing.B, sprinkled func(*testing.B) (o, s *snapTable), size int64, p []byte) *snapTable {
	_, s := sprinkled(b)
	for off := int64(0); off < size; off += int64(len(p)) {
		s.mustWrite(p, off, 0)
	}
	return s
}

// benchEachMiB runs f at each MiB of [0, size) in turn, round and round.
func benchEachMiB(b *testing.B, size int64, f func(off int64) error) {
	i := int64(0)
	cpu := cpuMeter(b)
	for b.Loop() {
		if err := f(i % (size >> 20) << 20); err != nil {
			b.Fatal(err)
		}
		i++
	}
	cpu(0)
}

// cpuMeter starts counting the process's CPU time; the function it returns
// reports it per iteration as cpu-ns/op, less the CPU time not spent in
// the loop's work (setups with the timer stopped).
func cpuMeter(b *testing.B) func(less time.Duration) {
	start := processCPU(b)
	return func(less time.Duration) {
		b.ReportMetric(float64(processCPU(b)-start-less)/float64(b.N), "cpu-ns/op")
	}
}
