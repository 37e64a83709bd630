package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gdm table prints a crypt key as dmsetup does, zeros of its length, in
// every form (text, all devices, --json, --inactive); --showkeys prints it.
// The state the daemon saves keeps the key: a restart would need it.
func TestTableHidesKeysUnlessShowkeys(t *testing.T) {
	td := startTestDaemon(t, "")
	img := filepath.Join(td.dir, "c.img")
	os.WriteFile(img, make([]byte, 1<<20), 0o600)
	key := strings.Repeat("0123456789abcdef", 4)
	zeros := strings.Repeat("0", len(key))
	line := func(k string) string { return "0 2048 crypt aes-xts-plain64 " + k + " 0 " + img + " 0" }
	td.ok(t, "create", "c", "--table", line(key))
	td.ok(t, "create", "l", "--table", "0 8 zero")
	td.ok(t, "load", "c", "--table", line(key))
	for _, args := range [][]string{{"table", "c"}, {"table"}, {"table", "c", "--json"}, {"table", "c", "--inactive"}} {
		out := td.ok(t, args...)
		if strings.Contains(out, key) || !strings.Contains(out, line(zeros)) {
			t.Errorf("gdm %s shows the key or not the zeros:\n%s", strings.Join(args, " "), out)
		}
		out = td.ok(t, append(args, "--showkeys")...)
		if !strings.Contains(out, line(key)) {
			t.Errorf("gdm %s --showkeys does not show the key:\n%s", strings.Join(args, " "), out)
		}
	}
	if out := td.ok(t, "status", "c"); strings.Contains(out, key) {
		t.Errorf("gdm status shows the key:\n%s", out)
	}
}
