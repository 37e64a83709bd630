package main

import (
	"strings"
)

// Go's monitor thread (sysmon) sleeps until a system call wakes it once
// every P is idle, which a daemon waiting on its sockets is between
// requests. Each wake-up is a futex wake, after which sysmon polls every
// 20 µs until the process is idle again: several extra context switches
// per NBD request, taken from the cores the request needs. On the 2-core
// VM of issue 13 it was gdm's main loss against nbdkit on writes (perf
// trace: 4 nanosleeps and 2 futexes per 1 MiB write; in bench/ab.sh
// rounds, 2.4 against 6.7 context switches per 1 MiB write with sysmon
// kept awake). A schedtrace period makes sysmon poll at its idle pace
// (every 10 ms) instead of sleeping, and the runtime reads it only from
// the environment at start, so `gdm serve` executes itself once more with
// it set. The period is the largest there is (about 24.8 days): sysmon
// prints one SCHED line to stderr per period, the first at start on a
// host up longer than that. The cost: about 100 wake-ups a second when
// idle. --steady-sysmon=false keeps Go's default.

// sysmonTrace is the GODEBUG setting that keeps sysmon polling.
const sysmonTrace = "schedtrace=2147483647"

// steadySysmonEnv is the environment to re-execute with, or nil when the
// running process already has a schedtrace (it is the re-executed one, or
// the user chose their own).
func steadySysmonEnv(environ []string) []string {
	env := make([]string, 0, len(environ)+1)
	found := false
	for _, kv := range environ {
		v, ok := strings.CutPrefix(kv, "GODEBUG=")
		if !ok {
			env = append(env, kv)
			continue
		}
		for _, s := range strings.Split(v, ",") {
			if strings.HasPrefix(s, "schedtrace=") {
				return nil
			}
		}
		found = true
		if v != "" {
			v += ","
		}
		env = append(env, "GODEBUG="+v+sysmonTrace)
	}
	if !found {
		env = append(env, "GODEBUG="+sysmonTrace)
	}
	return env
}
