// Command blockingcalls measures how many blocking system calls Go runs at
// once: 32 goroutines make 50 calls each that sleep in the kernel
// (nanosleep, as a pread on a slow disk blocks), and the elapsed time
// against one call's own length gives the calls in flight on average. A
// goroutine blocked in a system call keeps its P until the runtime's
// monitor takes it back, so with few Ps short calls do not all overlap.
// gdm's O_DIRECT I/O is such calls (see README, Limits). Run it as gdm
// runs: GOMAXPROCS=2 GODEBUG=schedtrace=2147483647 go run ./bench/blockingcalls
package main

import (
	"fmt"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// run makes n calls that sleep for ts on each of g goroutines.
func run(n, g int, ts *syscall.Timespec) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				syscall.Syscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(ts)), 0, 0)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func main() {
	for _, d := range []time.Duration{50 * time.Microsecond, 200 * time.Microsecond, time.Millisecond} {
		ts := syscall.NsecToTimespec(int64(d))
		one := run(50, 1, &ts) / 50 // one call's real length, alone
		all := run(50, 32, &ts)
		fmt.Printf("a call of %v (%v alone): 32 goroutines x 50 calls in %v: %.1f at once\n",
			d, one.Round(time.Microsecond), all.Round(time.Microsecond), float64(32*50)*float64(one)/float64(all))
	}
}
