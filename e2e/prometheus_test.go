package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// promQuery asks Prometheus' HTTP API for an instant vector and returns the
// value of its first sample (ok false when there is none yet).
func promQuery(t *testing.T, addr, q string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" || len(r.Data.Result) == 0 {
		return 0, false
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// A real Prometheus scrapes gdm every second; I/O and reloads show up in
// its queries.
func TestPrometheusScrapesGdm(t *testing.T) {
	prom := testkit.NeedTool(t, "prometheus")
	d := startDaemon(t, "")
	file := testkit.Sparse(t, d.dir, "p.img", 64<<20)
	d.gdm("create", "p", "--table", "0 131072 linear "+file+" 0")

	web, promLog := startPrometheus(t, prom, d.metrics, "")

	// Load: a few rounds of writes and reads while Prometheus scrapes, and
	// three reloads.
	deadline := time.Now().Add(90 * time.Second)
	var rate, swaps float64
	for round := 0; ; round++ {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(promLog)
			t.Fatalf("Prometheus never saw the values: rate %v swaps %v\n%s", rate, swaps, log)
		}
		run(t, "qemu-io", "-f", "raw", "-c", "write -P 1 0 8M", "-c", "read -P 1 0 8M", d.uri("p"))
		if round < 3 {
			d.gdm("load", "p", "--table", "0 131072 linear "+file+" 0")
			d.gdm("resume", "p")
		}
		var ok1, ok2 bool
		rate, ok1 = promQuery(t, web, `sum(rate(gdm_device_io_bytes_total{device="p",op="write"}[5s]))`)
		swaps, ok2 = promQuery(t, web, `gdm_table_swaps_total{device="p"}`)
		if ok1 && ok2 && rate > 0 && swaps >= 4 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("Prometheus: write rate %.0f B/s, swaps %v", rate, swaps)
	if up, ok := promQuery(t, web, `up{job="gdm"}`); !ok || up != 1 {
		t.Fatalf("up = %v", up)
	}
}

// startPrometheus runs prom scraping gdm's metrics address every second,
// evaluating rules (a rule file's path, or "") every second too. It returns
// Prometheus' web address and its log file.
func startPrometheus(t *testing.T, prom, metrics, rules string) (web, logFile string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	ruleFiles := ""
	if rules != "" {
		abs, err := filepath.Abs(rules)
		if err != nil {
			t.Fatal(err)
		}
		ruleFiles = fmt.Sprintf("rule_files: ['%s']\n", abs)
	}
	os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
%sscrape_configs:
  - job_name: gdm
    static_configs:
      - targets: ['%s']
`, ruleFiles, metrics)), 0o600)
	web = freePort(t)
	logFile = filepath.Join(dir, "prometheus.log")
	cmd := exec.Command(prom, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web, "--log.level=warn")
	out, _ := os.Create(logFile)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return web, logFile
}
