package main

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// testDaemon is a daemon started in-process on temp sockets and ports.
type testDaemon struct {
	*running
	dir     string
	control string
}

func startTestDaemon(t *testing.T, dir string) *testDaemon {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := serveConfig{
		nbdListen: "127.0.0.1:0", nbdSocket: filepath.Join(dir, "nbd.sock"),
		control: filepath.Join(dir, "control.sock"), metricsListen: "127.0.0.1:0",
		stateDir: filepath.Join(dir, "state"), logLevel: "error", shutdownWait: 10e9,
	}
	r, err := startServer(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	td := &testDaemon{running: r, dir: dir, control: cfg.control}
	t.Cleanup(func() { r.shutdown() })
	return td
}

// cli runs one gdm verb against the daemon and returns stdout, stderr and
// the exit status.
func (td *testDaemon) cli(stdin string, args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(append(args, "--control", td.control), strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// ok runs a verb that must succeed.
func (td *testDaemon) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := td.cli("", args...)
	if code != 0 {
		t.Fatalf("gdm %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// fails runs a verb that must fail with status 1 and an error line naming
// the verb (and device), containing want.
func (td *testDaemon) fails(t *testing.T, want string, args ...string) {
	t.Helper()
	_, errs, code := td.cli("", args...)
	if code != 1 || !strings.HasPrefix(errs, "gdm: "+args[0]) || !strings.Contains(errs, want) {
		t.Fatalf("gdm %s: exit %d, stderr %q; want exit 1 and %q", strings.Join(args, " "), code, errs, want)
	}
}

func (td *testDaemon) uri(name string) string {
	return "nbd+unix:///" + name + "?socket=" + filepath.Join(td.dir, "nbd.sock")
}

// openFiles lists the paths process pid has open under dir, sockets aside.
func openFiles(t *testing.T, pid int, dir string) []string {
	var out []string
	for _, p := range testkit.OpenUnder(t, pid, dir) {
		if !strings.HasSuffix(p, ".sock") {
			out = append(out, p)
		}
	}
	return out
}
