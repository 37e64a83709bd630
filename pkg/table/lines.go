package table

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/gdm-project/gdm/pkg/targets"
)

// lineStore is a table's lines, kept compactly: a million targets must not
// cost a million Line structs, argument slices and strings. Line i's type
// and canonical arguments, space-separated, run from begins[i] to the end
// of the line: in the text the table was built from, when that part of the
// line was canonical already (as in any table gdm wrote), and otherwise in
// side, at positions counted on from the end of text, each ended by a
// newline. Start and length are the table's starts. Arguments never hold
// white space (the builder refuses any that would), so splitting a part at
// spaces gives them back.
type lineStore struct {
	text   string // the text the table was parsed from, kept, not copied
	side   string // canonical copies of the parts that text has otherwise
	begins []int
	// verbatim: text is the table's canonical text, every byte of it (as
	// in a table gdm itself wrote), so Text is text, made in no time.
	verbatim bool
}

// part returns line i's type and arguments, space-separated.
func (s *lineStore) part(i int) string {
	rest := s.text[min(s.begins[i], len(s.text)):]
	if s.begins[i] >= len(s.text) {
		rest = s.side[s.begins[i]-len(s.text):]
	}
	if end := strings.IndexByte(rest, '\n'); end >= 0 {
		return rest[:end]
	}
	return rest
}

// fields appends line i's type and arguments to dst, as substrings of the
// store's text.
func (s *lineStore) fields(dst []string, i int) []string {
	part := s.part(i)
	for {
		sp := strings.IndexByte(part, ' ')
		if sp < 0 {
			return append(dst, part)
		}
		dst = append(dst, part[:sp])
		part = part[sp+1:]
	}
}

// typeName returns line i's target type, without splitting its arguments.
func (s *lineStore) typeName(i int) string {
	part := s.part(i)
	if sp := strings.IndexByte(part, ' '); sp >= 0 {
		return part[:sp]
	}
	return part
}

// Len is the number of targets (lines) in the table.
func (t *Table) Len() int { return len(t.lines.begins) }

// Line returns line i (0-based) of the table. Its LineNo is 0: where a
// line came from is not kept once the table is built.
func (t *Table) Line(i int) Line {
	f := t.lines.fields(nil, i)
	l := Line{Start: t.sector(i), Length: t.sector(i+1) - t.sector(i), Type: f[0]}
	if len(f) > 1 {
		l.Args = f[1:]
	}
	return l
}

// Head is line i without its arguments, made without allocating: what a
// status of a million targets needs of each (Line would make a million
// argument slices, 100 MB of garbage the daemon's RSS kept).
func (t *Table) Head(i int) Line {
	return Line{Start: t.sector(i), Length: t.sector(i+1) - t.sector(i), Type: t.lines.typeName(i)}
}

// Lines returns the table's lines, made afresh on each call: a caller that
// only walks them should use Len and Line, which allocate one line at a
// time.
func (t *Table) Lines() []Line {
	out := make([]Line, t.Len())
	for i := range out {
		out[i] = t.Line(i)
	}
	return out
}

// Text is the canonical table text. For a big table, WriteText writes the
// same without making it all in memory first.
func (t *Table) Text() string {
	if t.lines.verbatim {
		return t.lines.text
	}
	// Sized exactly first: growing a string of tens of megabytes by
	// doubling would touch twice the memory, and touching it is the cost.
	size := 0
	var num []byte
	for i := range t.Len() {
		num = strconv.AppendUint(num[:0], t.sector(i), 10)
		num = append(num, ' ')
		num = strconv.AppendUint(num, t.sector(i+1)-t.sector(i), 10)
		size += len(num) + 1 + len(t.lines.part(i)) + 1
	}
	var b strings.Builder
	b.Grow(size)
	t.WriteText(&b) // a strings.Builder does not fail
	return b.String()
}

// WriteText writes the canonical table text to w, a line at a time, as
// Format would: nothing the size of the table is made in memory.
func (t *Table) WriteText(w io.Writer) error {
	if t.lines.verbatim {
		_, err := io.WriteString(w, t.lines.text)
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	for i := range t.Len() {
		line = strconv.AppendUint(line[:0], t.sector(i), 10)
		line = append(line, ' ')
		line = strconv.AppendUint(line, t.sector(i+1)-t.sector(i), 10)
		line = append(line, ' ')
		line = append(line, t.lines.part(i)...)
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Verbatim reports whether the table's canonical text is, byte for byte,
// the text it was built from (as that of any table gdm wrote): a caller
// that kept that text, or wrote it out while the table was being built,
// need not make it again.
func (t *Table) Verbatim() bool { return t.lines.verbatim }

// sector is where target i starts, in sectors (i == Len() gives the end).
func (t *Table) sector(i int) uint64 { return uint64(t.starts[i]) / targets.SectorSize }
