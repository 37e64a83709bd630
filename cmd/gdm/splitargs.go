package main

import "strings"

// dmSplitArgs splits a message as the kernel's dm_split_args does, so
// that `gdm message` hands a target the words `dmsetup message` would:
// dmsetup joins its arguments with spaces and the kernel splits the text
// again at white space, where a backslash makes the next character (a
// space, a backslash) part of the word. So `message d 0 "mark a b"` is
// three words, as in dm, and `mark a\ b` two.
func dmSplitArgs(words []string) []string {
	in := strings.Join(words, " ")
	var out []string
	for i := 0; ; {
		for i < len(in) && isDMSpace(in[i]) {
			i++
		}
		if i == len(in) {
			return out
		}
		var w strings.Builder
		for ; i < len(in) && !isDMSpace(in[i]); i++ {
			if in[i] == '\\' && i+1 < len(in) {
				i++ // everything but the end can be quoted
			}
			w.WriteByte(in[i])
		}
		out = append(out, w.String())
	}
}

// isDMSpace is the kernel's isspace: the C locale's white space.
func isDMSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}
