package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// The benchmark script runs end to end (briefly) and prints a row for every
// server and job; the README's numbers come from its full run.
func TestBenchScriptRuns(t *testing.T) {
	testkit.NeedTool(t, "fio")
	testkit.NeedTool(t, "nbdkit")
	cmd := exec.Command("bash", "bench/run.sh", "-runtime", "1s", "-size", "67108864", "-repeat", "1")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench/run.sh: %v\n%s", err, out)
	}
	table := string(out)
	if strings.Contains(table, "failed") {
		t.Fatalf("a benchmark failed:\n%s", table)
	}
	for _, server := range []string{"| gdm |", "| gdm+metrics |", "| go-nbd |", "| nbdkit |"} {
		if n := strings.Count(table, server); n != 5 {
			t.Errorf("%d rows for %s, want 5:\n%s", n, server, table)
		}
	}
}

// The -tcp variant serves on loopback TCP; one short job per server.
func TestBenchScriptRunsOverTCP(t *testing.T) {
	testkit.NeedTool(t, "fio")
	testkit.NeedTool(t, "nbdkit")
	cmd := exec.Command("bash", "bench/run.sh", "-runtime", "1s", "-size", "67108864", "-repeat", "1",
		"-tcp", "-jobs", "4k randread qd32")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench/run.sh -tcp: %v\n%s", err, out)
	}
	table := string(out)
	for _, server := range []string{"| gdm |", "| gdm+metrics |", "| go-nbd |", "| nbdkit |"} {
		if n := strings.Count(table, server); n != 1 || strings.Contains(table, "failed") {
			t.Errorf("%d rows for %s, want 1 (none failed):\n%s", n, server, table)
		}
	}
	if !strings.Contains(table, "Loopback TCP, congestion control ") || strings.Contains(table, "congestion control unknown") {
		t.Errorf("the TCP table does not say which congestion control it ran under:\n%s", table)
	}
}
