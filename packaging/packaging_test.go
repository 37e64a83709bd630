// Package packaging holds what gdm ships beside its binary for operators
// (a systemd unit, Prometheus rules, a Grafana dashboard); its tests check those files with the tools that
// read them.
package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// The rules load in Prometheus, and each alert fires on the series its
// unit test feeds it and stays quiet on the healthy ones.
func TestPrometheusRules(t *testing.T) {
	promtool := testkit.NeedTool(t, "promtool") // Debian package prometheus
	for _, args := range [][]string{
		{"check", "rules", "gdm-rules.yml"},
		{"test", "rules", "gdm-rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// The unit passes systemd-analyze verify (with its ExecStart pointed at a
// freshly built gdm and gdm(8) where man finds it), and gdm serve accepts
// every flag its ExecStart passes.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := testkit.NeedTool(t, "systemd-analyze") // Debian package systemd
	testkit.NeedTool(t, "man")                        // verify checks Documentation=man:gdm(8)
	dir := t.TempDir()
	bin := filepath.Join(dir, "gdm")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/gdm").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	page, err := exec.Command(bin, "man").Output()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "man", "man8"), 0o755)
	os.WriteFile(filepath.Join(dir, "man", "man8", "gdm.8"), page, 0o644)

	unit, err := os.ReadFile("systemd/gdm.service")
	if err != nil {
		t.Fatal(err)
	}
	execStart := regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/gdm (.*)$`).FindSubmatch(unit)
	if execStart == nil {
		t.Fatal("no ExecStart=/usr/local/bin/gdm line")
	}
	args := append(strings.Fields(string(execStart[1])), "-h")
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("gdm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	local := filepath.Join(dir, "gdm.service")
	os.WriteFile(local, bytes.ReplaceAll(unit, []byte("/usr/local/bin/gdm"), []byte(bin)), 0o644)
	cmd := exec.Command(analyze, "verify", local)
	cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(dir, "man"))
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
