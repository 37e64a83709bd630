package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/oracle"
)

// capSysResource is CAP_SYS_RESOURCE's bit in /proc's CapEff.
const capSysResource = 24

// gdm serve makes every thread of the daemon an I/O flusher
// (cmd/gdm/ioflusher.go) when it may (CAP_SYS_RESOURCE), and otherwise
// says once that it serves without; --io-flusher=false does neither. The
// flag is per thread: every thread of the daemon, those started after it
// served, must carry it.
func TestIOFlusher(t *testing.T) {
	mayFlag := hasCap(t, capSysResource)
	const warning = "serving without PR_SET_IO_FLUSHER"
	for _, c := range []struct {
		name    string
		args    []string
		flagged bool
	}{
		{"default", nil, mayFlag},
		{"without steady sysmon", []string{"--steady-sysmon=false"}, mayFlag},
		{"off", []string{"--io-flusher=false"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := startDaemon(t, "", c.args...)
			d.gdm("create", "z", "--table", "0 8 zero")
			flagged, all, err := oracle.IOFlusherThreads(d.cmd.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			if c.flagged && flagged != all {
				t.Errorf("%d of the daemon's %d threads are I/O flushers, want all", flagged, all)
			}
			if !c.flagged && flagged != 0 {
				t.Errorf("%d of the daemon's %d threads are I/O flushers, want none", flagged, all)
			}
			d.stop() // its output is whole only once it has exited
			n := strings.Count(d.log.String(), warning)
			wantWarning := 0
			if !mayFlag && c.name != "off" {
				wantWarning = 1
			}
			if n != wantWarning {
				t.Errorf("the daemon said %q %d times, want %d (CAP_SYS_RESOURCE: %v); its output:\n%s", warning, n, wantWarning, mayFlag, d.log)
			}
		})
	}
	if !mayFlag {
		t.Log("this test process lacks CAP_SYS_RESOURCE: only the refusal was checked here; the dm oracle's guest checks the flag itself")
	}
}

// hasCap reports whether this test process has capability bit in its
// effective set.
func hasCap(t *testing.T, bit uint) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<bit) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}
