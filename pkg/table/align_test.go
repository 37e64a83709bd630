package table

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
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

// The table tells a crypt target where it starts (targets.Placer): one
// that starts 7 sectors into a 4096-byte block serves the block wholly
// inside it, as dm-crypt does, and fails the blocks it shares (EIO).
func TestAlignmentPlacesCrypt(t *testing.T) {
	_, _, crypt := cryptDisk(t)
	tb, err := FromText("0 7 zero\n7 16 "+crypt(" 1 sector_size:4096")+"\n23 1 zero", false)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.destroy(discardLog(), false)
	ctx := context.Background()
	p := make([]byte, 4096)
	if err := tb.WriteAt(ctx, p, 4096, 0); err != nil {
		t.Errorf("write of the block inside the crypt target: %v", err)
	}
	if err := tb.ReadAt(ctx, p, 4096); err != nil {
		t.Errorf("read of the block inside the crypt target: %v", err)
	}
	for _, off := range []int64{0, 8192} {
		if err := tb.ReadAt(ctx, p, off); !errors.Is(err, syscall.EIO) {
			t.Errorf("read of the block at %d, shared with a zero target: %v, want EIO", off, err)
		}
	}
}
