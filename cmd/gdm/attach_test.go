package main

import (
	"os"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// On a kernel without the nbd driver (this host; the guest test attaches
// for real) attach says what is missing, and leaves the device as it was.
func TestAttachWithoutDriver(t *testing.T) {
	if _, err := os.Stat("/sys/module/nbd"); err == nil {
		t.Skip("this kernel has the nbd driver: attach would attach")
	}
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 linear "+a+" 0")
	td.fails(t, "gdm: attach d: the kernel has no NBD driver (load it: modprobe nbd)", "attach", "d", "--connections", "4")
	if out := td.ok(t, "info", "d"); strings.Contains(out, "Attached") {
		t.Fatalf("info after a failed attach:\n%s", out)
	}
	td.fails(t, "d: not attached", "detach", "d")
	td.fails(t, "no device is attached as /dev/nbd3", "detach", "/dev/nbd3")
	td.fails(t, "connections must be 1 to 64", "attach", "d", "--connections", "65")
	if _, errs, code := td.cli("", "attach", "d", "--dead-timeout", "0s"); code != 2 || !strings.Contains(errs, "timeouts must be positive") {
		t.Fatalf("attach --dead-timeout 0s: exit %d, %q", code, errs)
	}
	td.ok(t, "remove", "d")
}
