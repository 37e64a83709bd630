// Package packaging holds what gdm ships beside its binary for operators
// (Prometheus rules, ...); its tests check those files with the tools that
// read them.
package packaging

import (
	"os/exec"
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
