package nbdclient

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// BenchmarkReadAt and BenchmarkWriteAt move data through the client to
// gdm's own server on a UNIX socket, with 16 callers in parallel
// (requests in flight at once). Besides ns/op they report cpu-ns/op: the
// process's CPU time (client and server) per request, which a shared
// machine's load moves much less than the wall clock.
func BenchmarkReadAt(b *testing.B) {
	benchIO(b, func(cl *Client, p []byte, off int64) error { return cl.ReadAt(context.Background(), p, off) })
}

func BenchmarkWriteAt(b *testing.B) {
	benchIO(b, func(cl *Client, p []byte, off int64) error { return cl.WriteAt(context.Background(), p, off, false) })
}

// BenchmarkPool compares a pool of one connection with the default of
// four (gdm's server offers CAN_MULTI_CONN, requests go round robin), 4 KiB
// requests 16 at a time and 1 MiB ones 4 at a time. Here (2-core VM, load
// 4.4-5.5) one connection cost about half the CPU per 4 KiB request of
// four, and 1.5-2.5 times as much per 1 MiB read; but a pool that filled
// its first connection before spilling over lost to round robin behind a
// real front server (bench/remote.sh, 4 KiB qd32: 77% of its IOPS, 8
// interleaved rounds), whose workers hand the client one request at a
// time: this benchmark's 32 callers batch in a way that path does not.
func BenchmarkPool(b *testing.B) {
	for _, conns := range []int{1, 4} {
		for _, size := range []int{4 << 10, 1 << 20} {
			par := 16
			if size > 4<<10 {
				par = 4
			}
			b.Run(fmt.Sprintf("conns=%d/read/size=%d", conns, size), func(b *testing.B) {
				benchOne(b, conns, par, size, func(cl *Client, p []byte, off int64) error { return cl.ReadAt(context.Background(), p, off) })
			})
			b.Run(fmt.Sprintf("conns=%d/write/size=%d", conns, size), func(b *testing.B) {
				benchOne(b, conns, par, size, func(cl *Client, p []byte, off int64) error { return cl.WriteAt(context.Background(), p, off, false) })
			})
		}
	}
}

func benchIO(b *testing.B, op func(cl *Client, p []byte, off int64) error) {
	for _, size := range []int{4 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchOne(b, 0, 16, size, op) })
	}
}

// benchOne runs op from par*GOMAXPROCS callers on a client of conns
// connections (0: the default).
func benchOne(b *testing.B, conns, par, size int, op func(cl *Client, p []byte, off int64) error) {
	m := nbdtest.NewMem(64 << 20)
	s := nbdtest.Start(b, nbdtest.Exports{"a": m})
	cl, err := Dial(context.Background(), Options{Network: "unix", Address: s.Path, Export: "a", MaxConns: conns})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	b.SetBytes(int64(size))
	b.SetParallelism(par)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		p := make([]byte, size)
		var off int64
		for pb.Next() {
			if err := op(cl, p, off); err != nil {
				b.Error(err)
				return
			}
			off = (off + int64(size)) % (64 << 20)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
