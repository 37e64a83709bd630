package table

import (
	"errors"
	"testing"

	"github.com/gdm-project/gdm/pkg/targets"
)

// dmsetup cuts a line's target arguments at the first '#' (its
// _parse_line: strchr(ptr, '#') after the start, length and type), so a
// comment may end a target line: "0 8 zero # spare" loads in dm, as
// "0 8 zero". gdm handed "#" and "spare" to zero as arguments and refused
// the line.
func TestCommentEndsATargetLine(t *testing.T) {
	in := "0 8 zero # spare\n8 8 linear /dev/x 7#seven\n16 8 error a # b\n24 8 zero #\n"
	want := "0 8 zero\n8 8 linear /dev/x 7\n16 8 error\n24 8 zero\n"
	lines, err := Parse(in)
	if err != nil {
		t.Fatalf("Parse(%q): %v", in, err)
	}
	if got := Format(lines); got != want {
		t.Fatalf("Format = %q, want %q", got, want)
	}
	tb, err := FromText("0 8 zero  # spare\n8 8 error x#y\n", false)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.destroy(discardLog(), false)
	if got := tb.Text(); got != "0 8 zero\n8 8 error\n" {
		t.Fatalf("Text = %q", got)
	}
	// The start, length and type are read before the cut, as dmsetup's
	// sscanf reads them: a '#' in the type is part of the type.
	if _, err := Parse("0 8 zero#x"); !errors.Is(err, targets.ErrUnknownType) {
		t.Fatalf("Parse of type zero#x: %v, want an unknown type", err)
	}
	// A line built by code cannot carry an argument with '#' as text.
	_, err = New([]Line{{Start: 0, Length: 8, Type: "error", Args: []string{"a#b"}}}, false)
	if !errors.Is(err, ErrArg) {
		t.Fatalf("New with an argument holding '#': %v, want ErrArg", err)
	}
}
