package e2e

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// SIGTERM lets in-flight requests finish; while it waits, a second signal
// ends the process at once.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	testkit.NeedTool(t, "qemu-io")
	d := startDaemon(t, "", "--shutdown-timeout", "2m")
	stuckRead(t, d)
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		t.Fatal("the daemon exited with a request in flight on a suspended device")
	case <-time.After(500 * time.Millisecond):
	}
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("a second SIGTERM did not end the daemon")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit status %d after the second signal, want 1", code)
	}
	t.Logf("exited %v after the second signal", time.Since(start).Round(time.Millisecond))
}

// stuckRead creates a suspended device "s" and a client whose read waits
// on it, and returns once the daemon counts that read in flight. The
// client ends when the daemon does (its connection closes).
func stuckRead(t *testing.T, d *daemon) {
	t.Helper()
	file := testkit.Sparse(t, d.dir, "s.img", 1<<20)
	d.gdm("create", "s", "--table", "0 2048 linear "+file+" 0")
	d.gdm("suspend", "s")
	client := exec.Command("qemu-io", "-f", "raw", "-c", "read 0 512", d.uri("s"))
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(scrape(t, d), `gdm_device_requests_in_flight{device="s"} 1`) {
		if time.Now().After(deadline) {
			t.Fatal("the client's read never reached the daemon")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape returns the daemon's /metrics text ("" if it cannot be had).
func scrape(t *testing.T, d *daemon) string {
	resp, err := http.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
