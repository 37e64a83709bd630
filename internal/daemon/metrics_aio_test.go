package daemon

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/aio"
)

// gathered is the value of the series of family name whose labels
// include want, from reg; -1 if there is none.
func gathered(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; ok && v != l.GetValue() {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// A read of a device over a block device goes through Linux AIO, and the
// scrape counts it in gdm_aio_requests_total{result="submitted"}.
func TestMetricsAIO(t *testing.T) {
	if aio.Shared() == nil {
		t.Skip("no Linux AIO here")
	}
	td := startTestDaemon(t, "")
	loop := testkit.Loop(t, testkit.Sparse(t, td.dir, "a.img", 1<<20), 0)
	td.ok(t, "create", "m", "--table", "0 2048 linear "+loop+" 0")
	m := mustGet(t, td, "m")
	reg := newRegistry(td.d)
	submitted := map[string]string{"result": "submitted"}
	before := gathered(t, reg, "gdm_aio_requests_total", submitted)
	if err := testkit.Await(t, func(done func(error)) bool { return m.exp.ReadAsync(context.Background(), make([]byte, 4096), 0, done) }); err != nil {
		t.Fatal(err)
	}
	if after := gathered(t, reg, "gdm_aio_requests_total", submitted); before < 0 || after != before+1 {
		t.Fatalf("gdm_aio_requests_total{result=\"submitted\"} went from %v to %v, want one more", before, after)
	}
	if n := gathered(t, reg, "gdm_aio_requests_in_flight", nil); n != 0 {
		t.Fatalf("gdm_aio_requests_in_flight %v after every request completed", n)
	}
}
