package targets

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// The CPU cost of a held request: b.N requests through a 1 ms delay from
// 32 goroutines at once, the process's user+system CPU time per request
// reported as cpu-ns/op (wall ns/op is mostly the delay itself). The
// per-request-timer variant is what the queue replaces: a timer of each
// request's own, stopped if its ctx ends first.

const benchDelayConcurrency = 32

func BenchmarkDelayQueue(b *testing.B) {
	q := newDelayQueue(realDelayClock{})
	benchHeld(b, func(ctx context.Context) {
		q.wait(ctx, delayRead, time.Millisecond)
	})
}

func BenchmarkDelayTimerPerRequest(b *testing.B) {
	benchHeld(b, func(ctx context.Context) {
		t := time.NewTimer(time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	})
}

// BenchmarkDelayTargetRead is the whole read path: the queue, the fault
// count and a 4 KiB pread.
func BenchmarkDelayTargetRead(b *testing.B) {
	s := NewDevSet(false)
	defer s.Close()
	path := testkit.Sparse(b, b.TempDir(), "dev", 1<<20)
	tg, err := newDelayWith([]string{path, "0", "1"}, 2048, s, realDelayClock{})
	if err != nil {
		b.Fatal(err)
	}
	defer tg.Destroy()
	pool := sync.Pool{New: func() any { return make([]byte, 4096) }}
	benchHeld(b, func(ctx context.Context) {
		p := pool.Get().([]byte)
		if err := tg.ReadAt(ctx, p, 0); err != nil {
			b.Error(err)
		}
		pool.Put(p)
	})
}

// benchHeld runs b.N calls of hold from benchDelayConcurrency goroutines
// and reports the CPU time per call.
func benchHeld(b *testing.B, hold func(ctx context.Context)) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for range benchDelayConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				hold(ctx)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
