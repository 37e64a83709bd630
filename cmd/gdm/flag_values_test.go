package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// A numeric flag out of its range is a usage error (exit 2) before the
// daemon is asked anything, not a value quietly replaced by a default:
// `suspend --timeout -1s` suspended with the daemon's 30 s, `attach
// --index -5` let the kernel pick any device and `--connections 0` gave
// one. The control socket here does not exist, so a verb that got as far
// as the daemon exits 1 instead.
func TestFlagValuesOutOfRange(t *testing.T) {
	control := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{
		{"suspend", "d", "--timeout", "-1s"},
		{"resume", "d", "--timeout", "-1s"},
		{"attach", "d", "--index", "-5"},
		{"attach", "d", "--index", "2147483648"},
		{"attach", "d", "--connections", "0"},
		{"attach", "d", "--connections", "-1"},
	} {
		var out, errb bytes.Buffer
		code := run(append(args, "--control", control), strings.NewReader(""), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), "usage: gdm "+args[0]) || strings.Contains(errb.String(), "cannot reach the daemon") {
			t.Errorf("gdm %s: exit %d, stderr %q; want exit 2 and the usage", strings.Join(args, " "), code, errb.String())
		}
	}
}
