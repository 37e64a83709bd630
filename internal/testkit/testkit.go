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
	"time"
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

// WaitFor polls cond until it holds, failing the test after within: a wait
// for a condition another goroutine or process brings about (a
// connection's end, a counter, a file), never a sleep standing in for one.
// It polls every millisecond for the first 100 ms, then every 20 ms, so a
// quick condition is seen quickly and a slow one costs little CPU.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitForValue(t, within, what, func() (bool, string) { return cond(), "" })
}

// WaitForValue is WaitFor for a condition that can say what it last saw;
// the failure reports it.
func WaitForValue(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if last != "" {
				t.Fatalf("%s: not within %v (last: %s)", what, within, last)
			}
			t.Fatalf("%s: not within %v", what, within)
		}
		if time.Since(start) < 100*time.Millisecond {
			time.Sleep(time.Millisecond)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Required reports whether missing tools and privileges fail tests rather
// than skip them: GDM_REQUIRE_TOOLS is set (CI and e2e/test-all.sh set it).
func Required() bool { return os.Getenv("GDM_REQUIRE_TOOLS") != "" }

// SkipOrFail ends a test that cannot run here (a tool, a privilege or a
// kernel feature it needs is missing): loudly skipped on a developer's
// machine, failed where Required, so that CI never counts a skip as a pass.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("cannot run here (GDM_REQUIRE_TOOLS is set): %s", msg)
	}
	t.Skipf("SKIPPING (not counted as passing): %s", msg)
}

// NeedTool finds a program; missing, the test is skipped on a developer's
// machine (loudly) and fails where GDM_REQUIRE_TOOLS is set, as in CI.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipOrFail(t, "%s is not installed; e2e/test-all.sh installs it", name)
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

// Await starts one asynchronous request with start, which reports whether
// it took the request, and returns the result its done gets; it fails the
// test if start refused or no result came within 10 s.
func Await(t testing.TB, start func(done func(error)) bool) error {
	t.Helper()
	got := make(chan error, 1)
	if !start(func(err error) { got <- err }) {
		t.Fatal("request not started")
	}
	select {
	case err := <-got:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no completion in 10 s")
		return nil
	}
}
