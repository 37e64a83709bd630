package table

import (
	"strings"
	"testing"
)

// TestTraits checks what a table's targets give as a whole, from one scan:
// the largest logical block size, discards only when every target takes
// them, hidden args (crypt's key) when any target hides its own, and no
// asynchronous path without a remote device; a
// later target still counts after an earlier one has settled a trait.
func TestTraits(t *testing.T) {
	img, key, crypt := cryptDisk(t)
	cases := []struct {
		name, text string
		blockSize  int
		discards   bool
		hides      bool
	}{
		{"zero and linear", "0 8 zero\n8 8 linear " + img + " 0", 512, true, false},
		{"crypt 4096 without discards", "0 16 " + crypt(" 1 sector_size:4096"), 4096, false, true},
		{"crypt 4096 with discards", "0 16 " + crypt(" 2 sector_size:4096 allow_discards"), 4096, true, true},
		{"no discards before a 4096 crypt", "0 8 " + crypt("") + "\n8 8 " + crypt(" 2 sector_size:4096 allow_discards"), 4096, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := mustTable(t, c.text)
			defer tb.destroy(discardLog(), false)
			if got := tb.LogicalBlockSize(); got != c.blockSize {
				t.Errorf("LogicalBlockSize = %d, want %d", got, c.blockSize)
			}
			if got := tb.SupportsDiscard(); got != c.discards {
				t.Errorf("SupportsDiscard = %v, want %v", got, c.discards)
			}
			if tb.traits().asyncs {
				t.Error("a table of local devices offers requests to the asynchronous path")
			}
			if got := tb.hidesArgs(); got != c.hides {
				t.Errorf("hidesArgs = %v, want %v", got, c.hides)
			}
			if c.hides && (strings.Contains(tb.Shown(false), key) || !strings.Contains(tb.Shown(true), key)) {
				t.Errorf("the key is not hidden exactly without --showkeys:\n%s\n%s", tb.Shown(false), tb.Shown(true))
			}
		})
	}
}
