package loopport

import "testing"

// Enough draws that the kernel repeats ports many times over (3000 draws
// from ~28000 ports); Free must pass none of them on. Under -count=N the
// draws would add up to exhaust the range, so each run starts afresh.
func TestFreeNeverRepeats(t *testing.T) {
	// A fresh process's state, so that -count=N does not exhaust the range.
	mu.Lock()
	given = map[string]bool{}
	mu.Unlock()
	seen := map[string]bool{}
	for range 3000 {
		addr, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
	}
}
