package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/internal/testkit"
)

// BenchmarkCreateBigTable creates a device of a million linear targets
// through the control API (the table as plain text) and reports the live
// heap the daemon keeps for it, per target: what a table costs the daemon
// beyond pkg/table's own figure (request buffers, saved state).
//
//	go test -run XXX -bench CreateBigTable -benchtime 3x ./internal/daemon/
func BenchmarkCreateBigTable(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	img := testkit.Sparse(b, dir, "big.img", n*8*512)
	var tb strings.Builder
	for i := range n {
		s := strconv.Itoa(i * 8)
		tb.WriteString(s + " 8 linear " + img + " " + s + "\n")
	}
	text := tb.String()
	td := startWith(b, dir, testConfig(dir))
	c := controlapi.New(td.control)
	b.ResetTimer()
	var perTarget float64
	for i := range b.N {
		name := fmt.Sprintf("big%d", i)
		before := liveHeap()
		if err := c.CallBody(http.MethodPost, "/v1/devices", url.Values{"name": {name}}, controlapi.TextTable, strings.NewReader(text), nil); err != nil {
			b.Fatal(err)
		}
		perTarget += float64(liveHeap()-before) / n
		b.StopTimer()
		td.ok(b, "remove", name)
		b.StartTimer()
	}
	b.ReportMetric(perTarget/float64(b.N), "heap-B/target")
}

// liveHeap is the heap in use after a full collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// BenchmarkRestartManyDevices starts a daemon over the state of 10,000
// one-line devices (each restored) and stops it: restart must grow
// linearly with the devices.
//
//	go test -run XXX -bench RestartManyDevices -benchtime 3x ./internal/daemon/
func BenchmarkRestartManyDevices(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			dir := b.TempDir()
			cfg := testConfig(dir)
			store := &stateStore{dir: cfg.StateDir}
			if _, _, err := store.open(); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				st := deviceState{Version: stateVersion, ID: fmt.Sprintf("id%06d", i), Name: fmt.Sprintf("d%06d", i),
					UUID: fmt.Sprintf("uuid-%06d", i), Live: "0 8 zero\n"}
				bs, _ := json.Marshal(st)
				if err := os.WriteFile(store.fileOf(st.ID), bs, 0o600); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				r, err := Start(cfg, nil)
				if err != nil {
					b.Fatal(err)
				}
				r.Shutdown()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/device")
		})
	}
}
