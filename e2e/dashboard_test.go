package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// dashboardExprs returns every PromQL expression of a Grafana dashboard:
// its panels' targets and its query variables, with Grafana's variables
// replaced by what selects everything (label_values(X, l) becomes X).
func dashboardExprs(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name       string
				Type       string
				Definition string
			}
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5s", "$job", "gdm", "$instance", ".*", "$device", ".*")
	labelValues := regexp.MustCompile(`^label_values\((.*), *\w+\)$`)
	out := map[string]string{}
	for _, p := range dash.Panels {
		for i, tg := range p.Targets {
			out[fmt.Sprintf("panel %q query %d", p.Title, i)] = vars.Replace(tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type == "query" {
			out["variable "+v.Name] = vars.Replace(labelValues.ReplaceAllString(v.Definition, "$1"))
		}
	}
	return out
}

// promResult runs an instant query and returns how many series it gave, or
// Prometheus' error (a query that does not parse).
func promResult(addr, q string) (int, error) {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct{ Result []json.RawMessage }
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("%s", r.Error)
	}
	return len(r.Data.Result), nil
}

// Every query of the Grafana dashboard, and every recording rule, parses
// and returns data from a real Prometheus scraping a real gdm that serves
// I/O, reloads, and injects faults.
func TestDashboardAndRulesQueryRealMetrics(t *testing.T) {
	prom := testkit.NeedTool(t, "prometheus")
	exprs := dashboardExprs(t, "../packaging/grafana/gdm.json")
	for _, rec := range []string{"gdm:device_io_bytes:rate5m", "gdm:device_io_operations:rate5m",
		"gdm:device_io_errors:ratio_rate5m", "gdm:device_io_duration_seconds:p99_5m"} {
		exprs["recording rule "+rec] = rec
	}
	d := startDaemon(t, "")
	file := testkit.Sparse(t, d.dir, "g.img", 16<<20)
	d.gdm("create", "g", "--table", "0 32768 linear "+file+" 0")
	d.gdm("create", "f", "--table", "0 32768 flakey "+file+" 0 0 1 1 error_writes")
	web, promLog := startPrometheus(t, prom, d.metrics, "../packaging/prometheus/gdm-rules.yml")
	// Queried before it listens, Prometheus refuses the connection: that
	// is no verdict on a query.
	testkit.WaitFor(t, 60*time.Second, "Prometheus to be ready", func() bool {
		resp, err := http.Get("http://" + web + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// The I/O goes on until every query has data or the deadline passes;
	// a query that does not parse fails at once.
	deadline := time.Now().Add(2 * time.Minute)
	missing := map[string]bool{}
	for name := range exprs {
		missing[name] = true
	}
	for round := 0; len(missing) > 0; round++ {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(promLog)
			t.Fatalf("no data after 2 minutes for %v\n%s", missing, log)
		}
		run(t, "qemu-io", "-f", "raw", "-c", "write -P 1 0 1M", "-c", "read -P 1 0 1M", d.uri("g"))
		exec.Command("qemu-io", "-f", "raw", "-c", "write -P 2 0 64k", d.uri("f")).Run() // fails: error_writes
		if round%3 == 0 {
			d.gdm("load", "g", "--table", "0 32768 linear "+file+" 0")
			d.gdm("resume", "g")
		}
		for name := range missing {
			n, err := promResult(web, exprs[name])
			if err != nil {
				t.Fatalf("%s: %s: %v", name, exprs[name], err)
			}
			if n > 0 {
				delete(missing, name)
			}
		}
		time.Sleep(500 * time.Millisecond) // the scrape interval is 1 s
	}
	t.Logf("%d dashboard queries and recording rules all returned data", len(exprs))
}
