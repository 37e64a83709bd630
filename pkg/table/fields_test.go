package table

import (
	"errors"
	"testing"

	"github.com/gdm-project/gdm/pkg/targets"
)

// dm splits a table line at ASCII white space only: dmsetup reads the
// start, length and type with sscanf (glibc's isspace takes no byte past
// 0x7f), and the kernel's dm_split_args splits the arguments with its
// own isspace. gdm split at Unicode's spaces too (strings.Fields), so
// "0 8 zero\u3000" loaded as "0 8 zero" and "linear $0 0\u00a0" as
// offset 0, where dm refuses both (seen in the oracle's guest), and a
// path holding U+3000 was cut in two.
func TestFieldsSplitAtASCIISpaceOnly(t *testing.T) {
	for _, c := range []struct {
		text string
		want error
	}{
		{"0 8 zero\u3000", targets.ErrUnknownType},
		{"0 8 linear /x 0\u00a0", targets.ErrNotNumber},
		{"0 8 linear /x\u20030", targets.ErrArgCount},
		{"0 8 linear /a\u3000b 0", nil},
		{"0 8 linear /voil\u00e0 0", nil},
	} {
		lines, err := Parse(c.text)
		if !errors.Is(err, c.want) {
			t.Errorf("Parse(%q): %v, want %v", c.text, err, c.want)
			continue
		}
		if err == nil && len(lines[0].Args) != 2 {
			t.Errorf("Parse(%q): args %q, want a path and an offset", c.text, lines[0].Args)
		}
	}
}
