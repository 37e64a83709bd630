package main

import "testing"

// A numeric flag out of its range is a usage error (exit 2) before the
// daemon is asked anything, not a value quietly replaced by a default:
// `suspend --timeout -1s` suspended with the daemon's 30 s, `attach
// --index -5` let the kernel pick any device and `--connections 0` gave
// one.
func TestFlagValuesOutOfRange(t *testing.T) {
	wantUsage(t, "suspend", "d", "--timeout", "-1s")
	wantUsage(t, "resume", "d", "--timeout", "-1s")
	wantUsage(t, "attach", "d", "--index", "-5")
	wantUsage(t, "attach", "d", "--index", "2147483648")
	wantUsage(t, "attach", "d", "--connections", "0")
	wantUsage(t, "attach", "d", "--connections", "-1")
	// Any duration flag below zero, serve's too, where --control-timeout
	// -1s took away the control requests' time limit.
	for _, f := range []string{"--control-timeout", "--shutdown-timeout", "--nbd-idle-timeout", "--open-timeout"} {
		wantUsage(t, "serve", f, "-1s")
	}
	// An empty NAME: before, the daemon's bare 404.
	for _, verb := range []string{"remove", "suspend", "status", "info"} {
		wantUsage(t, verb, "")
	}
}
