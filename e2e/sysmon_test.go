package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// gdm serve keeps Go's sysmon polling (cmd/gdm/sysmon.go) by executing
// itself again with a schedtrace in GODEBUG: the process the supervisor
// started (same pid) must run with it and serve; --steady-sysmon=false
// must leave the environment alone.
func TestSteadySysmon(t *testing.T) {
	environ := func(d *daemon) string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", d.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(b), "\x00", "\n")
	}
	d := startDaemon(t, "")
	d.gdm("create", "z", "--table", "0 8 zero")
	if env := environ(d); !strings.Contains(env, "GODEBUG=schedtrace=2147483647") {
		t.Errorf("the daemon (pid %d) runs without the schedtrace; its environment:\n%s", d.cmd.Process.Pid, env)
	}
	off := startDaemon(t, "", "--steady-sysmon=false")
	off.gdm("create", "z", "--table", "0 8 zero")
	if env := environ(off); strings.Contains(env, "schedtrace") {
		t.Errorf("--steady-sysmon=false: the daemon runs with a schedtrace; its environment:\n%s", env)
	}
}
