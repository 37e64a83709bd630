package daemon

import (
	"fmt"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/table"
)

// setDestroyHookForTest calls f with the stack of every table destroy.
func setDestroyHookForTest(t *testing.T, f func(stack string)) {
	var mu sync.Mutex
	table.SetDestroyHook(func(*table.Table) {
		buf := make([]byte, 64<<10)
		n := runtime.Stack(buf, false)
		mu.Lock()
		defer mu.Unlock()
		f(string(buf[:n]))
	})
	t.Cleanup(func() { table.SetDestroyHook(nil) })
}

// The seed's first bug, as a test: tables are destroyed only at the fixed
// points (load, resume, clear, remove, shutdown), never from an I/O, a
// status call or a metrics scrape. The racing I/O comes from real NBD
// connections, so a destroy reached from the server's request path would
// show nbdserver in its stack; each swap waits until reads have gone
// through since the last one, and every racing goroutine is waited for
// before the verdict.
func TestDestroyOnlyAtFixedPoints(t *testing.T) {
	var mu sync.Mutex
	var bad []string
	destroys := 0
	setDestroyHookForTest(t, func(stack string) {
		mu.Lock()
		defer mu.Unlock()
		destroys++
		for _, forbidden := range []string{"nbdserver.(*conn)", "collector", "statusOf", "infoOf", "(*Table).Put", "(*Device).io"} {
			if strings.Contains(stack, forbidden) {
				bad = append(bad, stack)
			}
		}
	})
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 32<<20)
	td.ok(t, "create", "d", "--table", "0 65536 linear "+a+" 0")
	m := mustGet(t, td, "d")
	var reads atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var conns []*nbdConn
	for range 4 {
		conns = append(conns, dialNBD(t, td.addrs["nbd-unix"], "d"))
	}
	for _, c := range conns {
		wg.Go(func() { readUntil(t, c, stop, &reads) })
	}
	scrape := make(chan struct{}, 1)
	wg.Go(func() { // a status call and a scrape race with each swap too
		for {
			select {
			case <-stop:
				return
			case <-scrape:
				td.d.serveStatus(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), m)
				newRegistry(td.d).Gather()
			}
		}
	})
	for i := range 20 {
		td.ok(t, "load", "d", "--table", fmt.Sprintf("0 %d linear %s 0", 32768+i, a))
		seen := reads.Load()
		testkit.WaitFor(t, 10*time.Second, "NBD reads between swaps", func() bool { return reads.Load() > seen })
		select {
		case scrape <- struct{}{}:
		default:
		}
		td.ok(t, "resume", "d", []string{"--live", "--timeout=5s"}[i%2])
	}
	close(stop)
	wg.Wait()
	for _, c := range conns {
		c.disconnect()
	}
	td.ok(t, "load", "d", "--table", "0 8 zero")
	td.ok(t, "clear", "d")
	td.ok(t, "remove", "d")
	mu.Lock()
	defer mu.Unlock()
	if destroys < 22 {
		t.Fatalf("%d destroys seen, want at least 22", destroys)
	}
	if len(bad) > 0 {
		t.Fatalf("a table was destroyed from a forbidden place:\n%s", bad[0])
	}
}

// readUntil reads the device's first 2 MiB over c, counting each read,
// until stop is closed; a failed read fails the test. The reads are large
// so that one is in flight at most swaps.
func readUntil(t *testing.T, c *nbdConn, stop <-chan struct{}, reads *atomic.Int64) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		c.c.SetDeadline(time.Now().Add(30 * time.Second))
		if e, _, err := c.do(0, 0, 2<<20, nil); e != 0 || err != nil {
			t.Errorf("NBD read during swaps: errno %d, %v", e, err)
			return
		}
		reads.Add(1)
	}
}
