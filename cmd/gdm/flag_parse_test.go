package main

import "testing"

// A flag the verb does not have, or a value its type cannot hold, is a
// command line that could not be understood: exit 2, as gdm(8)'s EXIT
// STATUS says and as a missing argument already was, not 1 (the daemon
// refused or failed the verb), which a script cannot tell from a refusal.
func TestBadFlagExits2(t *testing.T) {
	wantUsage(t, "remove", "d", "--bogus")
	wantUsage(t, "replay", "--limit", "x", "log", "dev")
	wantUsage(t, "suspend", "d", "--timeout", "soon")
	wantUsage(t, "attach", "d", "--index", "nbd0")
}
