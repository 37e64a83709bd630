package table

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// The builder sizes its arrays for the text's lines before it parses
// them, but blank lines and comments hold no target: a text of newlines
// (a byte a line) must not make it claim memory for a target a byte, 16
// bytes of arrays for each byte of text, 4 GiB for an upload of the
// largest text the daemon takes. It may claim what the densest text of
// targets of that length would (a line of at least six bytes, "0 1 x\n"),
// which a valid table of that size claims anyway.
func TestBuildClaimsNoMoreThanTargetsCouldNeed(t *testing.T) {
	const size = 8 << 20
	for _, text := range []string{strings.Repeat("\n", size), strings.Repeat("#\n", size/2)} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := FromText(text, false)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrEmpty) {
			t.Fatalf("a text without targets: %v, want ErrEmpty", err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 4*size {
			t.Errorf("building from %d bytes of %q lines allocated %d MiB, want at most %d MiB",
				size, text[:1], got>>20, 4*size>>20)
		}
	}
}
