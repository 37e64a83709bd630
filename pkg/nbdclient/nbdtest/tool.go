package nbdtest

import (
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// StartTool runs a server program (nbdkit, qemu-nbd) that listens on the
// UNIX socket sock, and waits until it accepts connections; the program is
// killed at the test's end. A missing program skips the test, or fails it
// where tools are required (testkit.NeedTool).
func StartTool(t testing.TB, sock string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(testkit.NeedTool(t, name), args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	testkit.WaitFor(t, 20*time.Second, name+" listening", func() bool {
		c, err := net.Dial("unix", sock) // the file appears at bind, before listen
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}
