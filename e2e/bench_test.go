package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

var benchServers = []string{"| gdm |", "| gdm+metrics |", "| gdm-crypt |", "| go-nbd |", "| nbdkit |", "| qemu-nbd |"}

// benchTools skips (or, under GDM_REQUIRE_TOOLS, fails) without the peers'
// tools: bench/run.sh needs them all.
func benchTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"fio", "nbdkit", "qemu-nbd"} {
		testkit.NeedTool(t, tool)
	}
}

// checkBenchHeader checks that a table says which machine it ran on.
func checkBenchHeader(t *testing.T, table, transport string) {
	t.Helper()
	for _, want := range []string{"Machine: ", " CPUs; kernel ", "; TCP congestion control ", "Transport: " + transport + "."} {
		if !strings.Contains(table, want) {
			t.Errorf("the header lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "unknown") {
		t.Errorf("the header has an unknown:\n%s", table)
	}
}

// checkBenchGoal checks the goal lines: one per job, a verdict for each
// gdm variant (short runs on a shared machine may go either way); then
// the crypt row's ratios to linear, one per job.
func checkBenchGoal(t *testing.T, table string, jobs int) {
	t.Helper()
	_, goal, ok := strings.Cut(table, "\nGoal: ")
	if !ok {
		t.Fatalf("no goal lines:\n%s", table)
	}
	goal, targets, ok := strings.Cut(goal, "\nTargets beside linear: ")
	if !ok {
		t.Fatalf("no targets-beside-linear lines:\n%s", table)
	}
	if n := strings.Count(targets, " | crypt | "); n != jobs {
		t.Errorf("%d crypt rows beside linear, want %d:\n%s", n, jobs, targets)
	}
	if !strings.Contains(goal, "| job | best peer (rounds) | gdm | gdm+metrics |") {
		t.Errorf("the goal table's header is not the one expected:\n%s", goal)
	}
	rows := 0
	for _, line := range strings.Split(goal, "\n") {
		if !strings.HasPrefix(line, "| 4k") && !strings.HasPrefix(line, "| 1M") {
			continue
		}
		rows++
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 4 {
			t.Errorf("goal row %q: %d cells, want 4", line, len(cells))
			continue
		}
		for _, c := range cells[2:] {
			if !strings.HasPrefix(c, "met (") && !strings.HasPrefix(c, "not met (") {
				t.Errorf("goal row %q: %q is no verdict", line, c)
			}
		}
	}
	if rows != jobs {
		t.Errorf("%d goal rows, want %d:\n%s", rows, jobs, goal)
	}
}

// The benchmark script runs end to end (briefly) and prints a row for every
// server and job; the README's numbers come from its full run.
func TestBenchScriptRuns(t *testing.T) {
	benchTools(t)
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
	rows, _, _ := strings.Cut(table, "\nGoal: ")
	for _, server := range benchServers {
		if n := strings.Count(rows, server); n != 5 {
			t.Errorf("%d rows for %s, want 5:\n%s", n, server, table)
		}
	}
	checkBenchHeader(t, table, "UNIX sockets")
	checkBenchGoal(t, table, 5)
}

// The -tcp variant serves on loopback TCP; one short job per server.
func TestBenchScriptRunsOverTCP(t *testing.T) {
	benchTools(t)
	cmd := exec.Command("bash", "bench/run.sh", "-runtime", "1s", "-size", "67108864", "-repeat", "1",
		"-tcp", "-jobs", "4k randread qd32")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench/run.sh -tcp: %v\n%s", err, out)
	}
	table := string(out)
	rows, _, _ := strings.Cut(table, "\nGoal: ")
	for _, server := range benchServers {
		if n := strings.Count(rows, server); n != 1 || strings.Contains(table, "failed") {
			t.Errorf("%d rows for %s, want 1 (none failed):\n%s", n, server, table)
		}
	}
	checkBenchHeader(t, table, "loopback TCP")
	checkBenchGoal(t, table, 1)
}
