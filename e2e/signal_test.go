package e2e

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGTERM lets in-flight requests finish; while it waits, a second signal
// ends the process at once.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	needTool(t, "qemu-io")
	d := startDaemon(t, "", "--shutdown-timeout", "2m")
	file := sparse(t, d.dir, "s.img", 1<<20)
	d.gdm("create", "s", "--table", "0 2048 linear "+file+" 0")
	d.gdm("suspend", "s")
	// A client whose read waits on the suspended device: in flight. It
	// ends when the daemon does (its connection closes).
	client := exec.Command("qemu-io", "-f", "raw", "-c", "read 0 512", d.uri("s"))
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	defer client.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(d.gdm("info", "s"), "Open count:        1") {
		if time.Now().After(deadline) {
			t.Fatal("the client never connected")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let its read reach the device
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
