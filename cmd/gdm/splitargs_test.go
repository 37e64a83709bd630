package main

import (
	"slices"
	"testing"
)

// dmSplitArgs gives the words the kernel's dm_split_args gives for the
// text dmsetup would send.
func TestDMSplitArgs(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want []string
	}{
		{[]string{"mark", "a"}, []string{"mark", "a"}},
		{[]string{"mark a b"}, []string{"mark", "a", "b"}},
		{[]string{"mark", `a\ b`}, []string{"mark", "a b"}},
		{[]string{`  key\\set `, "\tx\n"}, []string{`key\set`, "x"}},
		{[]string{`trailing\`}, []string{`trailing\`}}, // a backslash at the end stays
		{[]string{`\`}, []string{`\`}},
		{[]string{" ", ""}, nil},
		{nil, nil},
	} {
		if got := dmSplitArgs(c.in); !slices.Equal(got, c.want) {
			t.Errorf("dmSplitArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
