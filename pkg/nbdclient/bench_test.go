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

func benchIO(b *testing.B, op func(cl *Client, p []byte, off int64) error) {
	for _, size := range []int{4 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			m := nbdtest.NewMem(64 << 20)
			s := nbdtest.Start(b, nbdtest.Exports{"a": m})
			cl, err := Dial(context.Background(), Options{Network: "unix", Address: s.Path, Export: "a"})
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			b.SetBytes(int64(size))
			b.SetParallelism(16)
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
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
