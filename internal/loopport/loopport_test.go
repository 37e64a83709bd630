package loopport

import "testing"

// Enough draws that the kernel repeats ports many times over (3000 draws
// from ~28000 ports); Free must pass none of them on.
func TestFreeNeverRepeats(t *testing.T) {
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
