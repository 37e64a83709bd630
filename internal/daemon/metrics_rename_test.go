package daemon

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// A scrape names each device as it was when the scrape listed them, so
// that renames made while it runs (a to c, then b to a) cannot give two
// devices one name: the registry would refuse the whole scrape (500) for
// the duplicate label sets.
func TestScrapeNamesDevicesAsListed(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "a", "--table", "0 8 zero")
	td.ok(t, "create", "b", "--table", "0 8 zero")
	ch := make(chan prometheus.Metric) // unbuffered: the collector waits for each read
	go func() {
		collector{td.d}.Collect(ch)
		close(ch)
	}()
	defer func() { // a failed test lets the collector finish
		for range ch {
		}
	}()
	first := <-ch // device a's first series: its collection has begun
	ctx := context.Background()
	if _, err := td.d.rename(ctx, "a", "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := td.d.rename(ctx, "b", "a"); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for m := range chainFirst(first, ch) {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		key := m.Desc().String()
		for _, l := range pb.GetLabel() {
			key += "," + l.GetName() + "=" + l.GetValue()
		}
		if seen[key] {
			t.Fatalf("a series twice in one scrape: %s", key)
		}
		seen[key] = true
	}
}

// chainFirst yields first, then what ch gives until it is closed.
func chainFirst(first prometheus.Metric, ch <-chan prometheus.Metric) func(func(prometheus.Metric) bool) {
	return func(yield func(prometheus.Metric) bool) {
		if !yield(first) {
			return
		}
		for m := range ch {
			if !yield(m) {
				return
			}
		}
	}
}
