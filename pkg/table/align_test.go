package table

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestAlignment checks dm's rule for a table with a logical block size
// above 512 (crypt's sector_size:4096): the table must end on a block
// boundary; targets inside it may straddle blocks (with 512-byte backing
// blocks dm can split there), and a table of 512-byte blocks may end
// anywhere.
func TestAlignment(t *testing.T) {
	img, key, crypt := cryptDisk(t)
	c4k := crypt(" 1 sector_size:4096")
	cases := []struct {
		name, text string
		badLine    int    // 0: accepted
		reason     string // dm's words, for a refused table
	}{
		{"crypt after linear of 7", "0 7 linear " + img + " 0\n7 8 " + c4k, 2,
			"table line 2 (start sect 7 len 8) not aligned to h/w logical block size 4096"},
		{"crypt straddling, table ends aligned", "0 7 linear " + img + " 0\n7 8 " + c4k + "\n15 1 zero", 0, ""},
		{"zero of 3 after crypt", "# a comment\n\n0 8 " + c4k + "\n8 3 zero", 4,
			"table line 2 (start sect 8 len 3) not aligned to h/w logical block size 4096"},
		{"crypt 4096 then linear of 8", "0 16 " + c4k + "\n16 8 linear " + img + " 0", 0, ""},
		{"crypt 512 of odd length", "0 7 linear " + img + " 0\n7 9 " + crypt(""), 0, ""},
		{"odd table without crypt", "0 3 zero\n3 4 error", 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb, err := FromText(c.text, false)
			if c.badLine == 0 {
				if err != nil {
					t.Fatalf("refused a table dm takes: %v", err)
				}
				tb.destroy(discardLog(), false)
				return
			}
			var le *LineError
			if !errors.As(err, &le) || le.Line != c.badLine || !errors.Is(err, ErrAlign) {
				t.Fatalf("got %v, want ErrAlign at line %d", err, c.badLine)
			}
			if !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("%v does not say %q", err, c.reason)
			}
			if strings.Contains(fmt.Sprint(err), key) {
				t.Fatal("the error quotes the key")
			}
		})
	}
}
