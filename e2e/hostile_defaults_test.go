package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// By default (no --nbd-listen) gdm serve does not hand every local user
// every device: it has no TCP listener at all, and its NBD socket is mode
// 0660, so an unprivileged user cannot connect even where the directory
// lets them reach it.
func TestHostileDefaultsServeNoOneElse(t *testing.T) {
	nbdinfo := testkit.NeedTool(t, "nbdinfo")
	setpriv := testkit.NeedTool(t, "setpriv")
	if os.Geteuid() != 0 {
		testkit.SkipOrFail(t, "needs root to switch to an unprivileged user")
	}
	// Every directory on the way is reachable by anyone, as /run/gdm is:
	// only the socket's own mode may keep the user out.
	dir, err := os.MkdirTemp("", "gdm-defaults-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pub := filepath.Join(dir, "pub")
	if err := os.Mkdir(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	d := newTestDaemon(t, dir)
	d.tcp, d.metrics, d.nbdSock = "", "", filepath.Join(pub, "nbd.sock")
	d.start()
	t.Cleanup(d.stop)
	d.gdm("create", "secret", "--table", "0 8 zero")

	if n := tcpListeners(t, d.cmd.Process.Pid); n != 0 {
		t.Fatalf("gdm serve without --nbd-listen listens on %d TCP sockets", n)
	}
	uri := "nbd+unix:///secret?socket=" + d.nbdSock
	run(t, "nbdinfo", uri) // root can
	out, err := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", nbdinfo, uri).CombinedOutput()
	if err == nil {
		t.Fatalf("an unprivileged user reached the device over the default NBD socket:\n%s", out)
	}
	if !strings.Contains(string(out), "ermission denied") {
		t.Fatalf("unprivileged nbdinfo failed, but not for want of permission:\n%s", out)
	}
}

// tcpListeners counts the TCP sockets in LISTEN state that process pid
// holds (both families).
func tcpListeners(t *testing.T, pid int) int {
	t.Helper()
	mine := map[string]bool{}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	if len(mine) == 0 {
		t.Fatal("the daemon holds no sockets at all: cannot tell")
	}
	n := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && fields[3] == "0A" && mine[fields[9]] { // 0A: LISTEN
				n++
			}
		}
		f.Close()
	}
	return n
}
