package main

import (
	"slices"
	"testing"
)

// steadySysmonEnv adds the schedtrace to GODEBUG, keeping the user's other
// settings, and asks for no exec once a schedtrace is there.
func TestSteadySysmonEnv(t *testing.T) {
	for _, c := range []struct {
		in, want []string
	}{
		{[]string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=" + sysmonTrace}},
		{[]string{"GODEBUG=madvdontneed=1", "A=b"}, []string{"GODEBUG=madvdontneed=1," + sysmonTrace, "A=b"}},
		{[]string{"GODEBUG="}, []string{"GODEBUG=" + sysmonTrace}},
		{[]string{"GODEBUG=" + sysmonTrace}, nil},
		{[]string{"GODEBUG=gctrace=1,schedtrace=1000"}, nil},
	} {
		if got := steadySysmonEnv(c.in); !slices.Equal(got, c.want) {
			t.Errorf("steadySysmonEnv(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
