package table

import (
	"errors"
	"strings"
)

// eachLine calls fn with the fields of each target line of text, skipping
// blank lines and comments, and stops at fn's first error. It walks the
// text in place rather than splitting it into a slice of lines, and the
// fields are substrings of text in one buffer that the next call reuses:
// a table of a million lines costs no allocation per line here.
func eachLine(text string, fn func(lineNo int, fields []string) error) error {
	var fields []string
	for lineNo := 1; text != ""; lineNo++ {
		raw := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			raw, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		fields = cutComment(appendFields(fields[:0], raw))
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if err := fn(lineNo, fields); err != nil {
			return err
		}
	}
	return nil
}

// asciiSpace marks the bytes a table line is split at: C's isspace in
// the C locale, as dmsetup's sscanf reads a line's start, length and type,
// and as the kernel's dm_split_args splits its arguments (see
// appendFields).
var asciiSpace = [256]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// appendFields appends the fields of line to dst, split at ASCII white
// space, without allocating. No other byte splits: a path or argument may
// hold Unicode's spaces (U+3000) or any other UTF-8, as in dm, and
// "0 8 zero\u3000" names the type "zero\u3000", which dm refuses too.
// (The kernel's isspace also takes the byte 0xa0, Latin-1's no-break
// space, which cuts a UTF-8 "à" or U+00A0 in two; gdm does not: where dm
// then refuses a line, gdm reads the argument whole.)
func appendFields(dst []string, line string) []string {
	start := -1
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case asciiSpace[c] && start >= 0:
			dst = append(dst, line[start:i])
			start = -1
		case !asciiSpace[c] && start < 0:
			start = i
		}
	}
	if start >= 0 {
		dst = append(dst, line[start:])
	}
	return dst
}

// cutComment ends a target line's arguments at the first '#', as dmsetup
// does (its _parse_line reads the start, length and type with sscanf,
// then cuts the rest at strchr '#'): "0 8 zero # spare" is "0 8 zero".
// The first three fields are kept whole, a '#' in them included, as
// sscanf reads them; a line that starts with '#' is a comment, which the
// caller skips.
func cutComment(fields []string) []string {
	for i := 3; i < len(fields); i++ {
		if at := strings.IndexByte(fields[i], '#'); at >= 0 {
			if at == 0 {
				return fields[:i]
			}
			fields[i] = fields[i][:at]
			return fields[:i+1]
		}
	}
	return fields
}

// errFound stops eachLine at the first target line (HasTargets).
var errFound = errors.New("found")

// HasTargets says whether text has a target line: one that is neither
// blank nor a comment. It stops at the first.
func HasTargets(text string) bool {
	return eachLine(text, func(int, []string) error { return errFound }) != nil
}
