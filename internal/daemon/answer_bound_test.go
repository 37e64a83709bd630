package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/table"
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
// The others wait, holding nothing, until one is written. The bound is
// three copies of the answer for each answer made and two more: the
// answers the clients asked for would be 32 copies.
func TestBigAnswersBounded(t *testing.T) {
	for _, c := range []struct{ path, writing string }{
		{"table", "writeJSON"},
		{"table?format=text", "serveTable"},
		{"status", "serveStatus"},
	} {
		t.Run(c.path, func(t *testing.T) {
			td := startTestDaemon(t, "")
			name := bigTable(t, td)
			text := len(controlGet(t, td, "/v1/devices/"+name+"/"+c.path)) // the answer
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
				t.Fatalf("%d clients not reading the %s (%d KiB) of a big table made the heap grow by %d MiB (bound %d MiB)",
					clients, c.path, text>>10, grown>>20, bound>>20)
			}
		})
	}
}

// An answer written to a control client that does not read holds no
// reference to the table it shows: the text or status is made under the
// reference, which is let go before the first write. Held, it made the
// device's suspend wait for that client (up to the answer's 30 s write
// deadline), and a swap's destroy of the table too.
func TestStalledAnswerHoldsNoTable(t *testing.T) {
	for _, c := range []struct{ path, writing string }{
		{"table?format=text", "serveTable"},
		{"status", "serveStatus"},
	} {
		t.Run(strings.Split(c.path, "?")[0], func(t *testing.T) {
			td := startTestDaemon(t, "")
			name := bigTable(t, td)
			sendWithoutReading(t, td, fmt.Sprintf("GET /v1/devices/%s/%s HTTP/1.1\r\nHost: gdm\r\n\r\n", name, c.path))
			testkit.WaitFor(t, 20*time.Second, "the answer blocked writing", func() bool {
				return stacksWith(c.writing, "(*FD).Write") == 1
			})
			m, err := td.d.get(name)
			if err != nil {
				t.Fatal(err)
			}
			var holders int64
			m.dev.View(table.Live, func(tb *table.Table) error { holders = tb.Holders(); return nil })
			if holders != 1 { // this View's own
				t.Fatalf("a blocked answer holds the live table: %d holders besides none", holders-1)
			}
		})
	}
}

// controlGet returns the body of a GET of path on td's control socket.
func controlGet(t *testing.T, td *testDaemon, path string) []byte {
	t.Helper()
	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", td.control)
	}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://gdm" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", path, resp.Status, err)
	}
	return body
}
