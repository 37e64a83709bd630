package daemon

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

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
// status call or a metrics scrape.
func TestDestroyOnlyAtFixedPoints(t *testing.T) {
	var bad []string
	destroys := 0
	setDestroyHookForTest(t, func(stack string) {
		destroys++
		for _, forbidden := range []string{"nbdserver.(*conn)", "collector", "statusOf", "infoOf", "(*Table).Put", "(*Device).io"} {
			if strings.Contains(stack, forbidden) {
				bad = append(bad, stack)
			}
		}
	})
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 linear "+a+" 0")
	m, _ := td.d.get("d")
	ctx := context.Background()
	for i := range 20 {
		td.ok(t, "load", "d", "--table", fmt.Sprintf("0 %d linear %s 0", 1024+i, a))
		go func() { // I/O, status and scrapes race with the swap
			m.dev.ReadAt(ctx, make([]byte, 512), 0)
			statusOf(m)
			newRegistry(td.d).Gather()
		}()
		td.ok(t, "resume", "d", []string{"--live", "--timeout=5s"}[i%2])
		statusOf(m)
		newRegistry(td.d).Gather()
	}
	td.ok(t, "load", "d", "--table", "0 8 zero")
	td.ok(t, "clear", "d")
	td.ok(t, "remove", "d")
	if destroys < 22 {
		t.Fatalf("%d destroys seen, want at least 22", destroys)
	}
	if len(bad) > 0 {
		t.Fatalf("a table was destroyed from a forbidden place:\n%s", bad[0])
	}
}
