// Package testkit holds helpers shared by the tests of several packages
// (unit tests and e2e alike).
package testkit

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Sparse makes a sparse file of size bytes in dir and returns its path.
func Sparse(t testing.TB, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

// OpenUnder lists the files process pid has open under dir.
func OpenUnder(t testing.TB, pid int, dir string) []string {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err == nil && strings.HasPrefix(target, dir) {
			out = append(out, target)
		}
	}
	return out
}

// NeedTool finds a program; missing, the test is skipped on a developer's
// machine (loudly) and fails where GDM_REQUIRE_TOOLS is set, as in CI.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("GDM_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is not installed (GDM_REQUIRE_TOOLS is set)", name)
		}
		t.Skipf("SKIPPING: %s is not installed; e2e/test-all.sh installs it", name)
	}
	return p
}

// FioErrors parses fio's --output-format=json output (anything printed
// before the JSON is skipped) and returns the sum of its jobs' error codes.
// Output that holds no jobs fails the test: a fio that ran nothing has not
// verified anything.
func FioErrors(t testing.TB, out string) int {
	t.Helper()
	var res struct {
		Jobs []struct {
			Error int `json:"error"`
		} `json:"jobs"`
	}
	i := strings.Index(out, "{")
	if i < 0 {
		t.Fatalf("fio printed no JSON:\n%s", out)
	}
	if err := json.Unmarshal([]byte(out[i:]), &res); err != nil {
		t.Fatalf("fio output: %v\n%s", err, out)
	}
	if len(res.Jobs) == 0 {
		t.Fatalf("fio reported no jobs:\n%s", out)
	}
	errs := 0
	for _, j := range res.Jobs {
		errs += j.Error
	}
	return errs
}
