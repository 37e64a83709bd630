package main

import (
	"strings"
	"testing"
)

// TestNameIsOnePathSegment: a device name the daemon would refuse must
// never reach another device through the URL it is put in. "z?x" once
// became DELETE /v1/devices/z with query x, and "q/../z" a path the
// daemon's mux redirected to /v1/devices/z, which the HTTP client
// followed as a GET: remove and suspend acted on z, or exited 0 having
// done nothing.
func TestNameIsOnePathSegment(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "z", "--table", "0 2048 zero")
	for _, name := range []string{"z?x", "z#x", "q/../z", "z/", "..", "."} {
		for _, verb := range []string{"remove", "suspend", "info", "table"} {
			_, errs, code := td.cli("", verb, name)
			if code != 1 || !strings.Contains(errs, "gdm: "+verb+" "+name+": ") {
				t.Errorf("gdm %s %q: exit %d, stderr %q; want exit 1 naming the device", verb, name, code, errs)
			}
		}
	}
	if out := td.ok(t, "info", "z"); !strings.Contains(out, "State:             ACTIVE") {
		t.Fatalf("z after the refused names:\n%s", out)
	}
}
