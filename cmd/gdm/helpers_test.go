package main

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/daemon"
)

// testDaemon is a daemon started in-process on temp sockets and ports,
// for the verbs to drive.
type testDaemon struct {
	*daemon.Running
	dir     string
	control string
}

func startTestDaemon(t *testing.T, dir string) *testDaemon {
	t.Helper()
	return startTestDaemonWith(t, dir, nil)
}

// startTestDaemonWith is startTestDaemon with the config changed by set
// (when not nil) before the daemon starts.
func startTestDaemonWith(t *testing.T, dir string, set func(*daemon.Config)) *testDaemon {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := daemon.Config{
		NBDSocket: filepath.Join(dir, "nbd.sock"), Control: filepath.Join(dir, "control.sock"),
		StateDir: filepath.Join(dir, "state"), LogLevel: slog.LevelError, ShutdownWait: 10e9,
	}
	if set != nil {
		set(&cfg)
	}
	r, err := daemon.Start(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	td := &testDaemon{Running: r, dir: dir, control: cfg.Control}
	t.Cleanup(func() { r.Shutdown() })
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

// wantUsage runs a verb against a control socket that does not exist and
// wants it refused as a usage error (exit 2 and the verb's usage line)
// before the daemon is dialled (which would exit 1).
func wantUsage(t *testing.T, args ...string) {
	t.Helper()
	control := filepath.Join(t.TempDir(), "none.sock")
	var out, errb bytes.Buffer
	code := run(append(args, "--control", control), strings.NewReader(""), &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "usage: gdm "+args[0]) || strings.Contains(errb.String(), "cannot reach the daemon") {
		t.Errorf("gdm %s: exit %d, stderr %q; want exit 2 and the usage", strings.Join(args, " "), code, errb.String())
	}
}
