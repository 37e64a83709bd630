package daemon

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// stacksWith counts the goroutines whose stacks name every one of fns.
func stacksWith(fns ...string) int {
	buf := make([]byte, 16<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		all := true
		for _, fn := range fns {
			all = all && strings.Contains(g, fn)
		}
		if all {
			n++
		}
	}
	return n
}

// Answers that copy a big table whole (its JSON text, its status lines)
// are made at most maxBigAnswers at once, as big uploads are read: before,
// each control connection asking for one held a copy while its client
// did not read (64 connections and a million-target table: gigabytes).
// The others wait, holding nothing, until one is written.
func TestBigAnswersBounded(t *testing.T) {
	for _, c := range []struct{ path, writing string }{
		{"table", "writeJSON"},
		{"status", "serveStatus"},
	} {
		t.Run(c.path, func(t *testing.T) {
			td := startTestDaemon(t, "")
			name := bigTable(t, td)
			text := len(td.ok(t, "table", name))
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			base := ms.HeapAlloc
			const clients = 32
			for range clients {
				sendWithoutReading(t, td, fmt.Sprintf("GET /v1/devices/%s/%s HTTP/1.1\r\nHost: gdm\r\n\r\n", name, c.path))
			}
			testkit.WaitFor(t, 20*time.Second, "every answer blocked writing, or waiting its turn", func() bool {
				return stacksWith(c.writing, "(*FD).Write")+stacksWith("answerSlot") == clients
			})
			runtime.GC()
			runtime.ReadMemStats(&ms)
			bound := uint64((maxBigAnswers + 2) * 3 * text)
			if grown := ms.HeapAlloc - min(base, ms.HeapAlloc); grown > bound {
				t.Fatalf("%d clients not reading the %s of a %d KiB table made the heap grow by %d MiB (bound %d MiB)",
					clients, c.path, text>>10, grown>>20, bound>>20)
			}
		})
	}
}
