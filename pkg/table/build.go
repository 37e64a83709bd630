package table

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/gdm-project/gdm/pkg/btree"
	"github.com/gdm-project/gdm/pkg/targets"
)

// ErrArg is an argument, in a line built by code, that a table text could
// not carry: empty, or holding white space or a '#' (where dmsetup's
// syntax, and Parse, end the line's arguments).
var ErrArg = errors.New("argument empty or holding white space or '#'")

// builder makes a Table in two passes, so that a bad line anywhere is
// refused before any device is opened: add checks and stores each line
// compactly (see lineStore), then build makes the targets, opening their
// devices, and the index. It keeps nothing per line that the Table does not
// keep: on this kind of machine touching fresh memory is most of what a
// big table costs to build (a 4 KiB page's first touch, ~40 µs here).
type builder struct {
	text   string  // the text being parsed ("" for lines built by code)
	side   []byte  // the lineStore's side, growing
	begins []int   // the lineStore's begins
	starts []int64 // byte offset of each target
	next   uint64  // the sector the next line must start at
	// verbatim: the text so far is the canonical text of the lines so far,
	// up to lineEnd (see lineStore.verbatim).
	verbatim bool
	lineEnd  int
	// lineNo says where line i came from, for errors.
	lineNo func(i int) int
	// devShifts[i] is log2 of target i's devices' largest logical block
	// size in sectors (align.go); nil while every device has 512-byte
	// blocks, as a table of files has: it then costs nothing.
	devShifts []uint8
}

// newBuilder makes a builder for about n lines.
func newBuilder(n int) *builder {
	return &builder{begins: make([]int, 0, n), starts: make([]int64, 0, n+1)}
}

// minLineBytes is the shortest target line, with the newline that ends
// it: "0 1 x\n".
const minLineBytes = len("0 1 x\n")

// targetsAtMost is how many target lines text can hold, to size the
// builder for before parsing: its lines, but no more than its length
// fits. Blank lines and comments hold no target; counted as lines, a text
// of newlines made the builder claim 16 bytes of arrays for each of its
// bytes (4 GiB for the largest upload the daemon takes), where the
// densest valid table of that length claims less than that builds into.
func targetsAtMost(text string) int {
	return min(strings.Count(text, "\n")+1, len(text)/minLineBytes+1)
}

// parse checks text line by line (as Parse does) and adds each line,
// keeping the text itself as the store of lines that are canonical in it.
func (b *builder) parse(text string) error {
	b.text = text
	b.lineNo = func(i int) int { return lineNoOf(text, i) }
	b.verbatim = true
	var num []byte
	err := eachLine(text, func(lineNo int, fields []string) error {
		l, err := checkLine(fields, b.next, len(b.begins) == 0)
		if err != nil {
			return &LineError{Line: lineNo, Err: err}
		}
		if !canonical(text, fields[2:], l) {
			b.verbatim = false
			return b.add(l, lineNo)
		}
		if b.verbatim {
			num = strconv.AppendUint(num[:0], l.Start, 10)
			b.verbatim = offsetIn(text, fields[0]) == b.lineEnd && fields[0] == string(num)
			num = strconv.AppendUint(num[:0], l.Length, 10)
			b.verbatim = b.verbatim && fields[1] == string(num) && spaced(text, fields[0], fields[1]) && spaced(text, fields[1], fields[2])
			last := fields[len(fields)-1]
			b.lineEnd = offsetIn(text, last) + len(last) + 1 // canonical: a newline or the end
		}
		b.push(l, offsetIn(text, fields[2]))
		return nil
	})
	b.verbatim = b.verbatim && b.lineEnd == len(text)
	return err
}

// addLines adds lines built by code.
func (b *builder) addLines(lines []Line) error {
	b.lineNo = func(i int) int { return lines[i].LineNo }
	for _, l := range lines {
		if err := b.add(l, l.LineNo); err != nil {
			return err
		}
	}
	return nil
}

// add stores a line that must start where the last one ended, with its
// type and arguments copied to side.
func (b *builder) add(l Line, lineNo int) error {
	if l.Start != b.next || l.Length == 0 || l.Length > maxSectors-l.Start {
		return &LineError{Line: lineNo, Err: fmt.Errorf("%w: targets must start at 0 and adjoin", ErrGap)}
	}
	for _, a := range l.Args {
		if a == "" || strings.ContainsAny(a, " \t\n\v\f\r#") {
			return &LineError{Line: lineNo, Err: fmt.Errorf("%s: %w: %q", l.Type, ErrArg, a)}
		}
	}
	begin := len(b.text) + len(b.side)
	b.side = append(b.side, l.Type...)
	for _, a := range l.Args {
		b.side = append(b.side, ' ')
		b.side = append(b.side, a...)
	}
	b.side = append(b.side, '\n')
	b.push(l, begin)
	return nil
}

// push records a checked line whose part begins at begin in the store.
func (b *builder) push(l Line, begin int) {
	b.begins = append(b.begins, begin)
	b.starts = append(b.starts, int64(l.Start)*targets.SectorSize)
	b.next = l.Start + l.Length
}

// canonical reports whether fields (type and arguments, substrings of
// text) are l's canonical type and arguments, one space apart, with the
// line ending after them.
func canonical(text string, fields []string, l Line) bool {
	if fields[0] != l.Type || len(fields)-1 != len(l.Args) {
		return false
	}
	last := fields[len(fields)-1]
	if end := offsetIn(text, last) + len(last); end < len(text) && text[end] != '\n' {
		return false
	}
	for i, a := range l.Args {
		if fields[i+1] != a || !spaced(text, fields[i], fields[i+1]) {
			return false
		}
	}
	return true
}

// spaced reports whether b follows a in text after exactly one space.
func spaced(text, a, b string) bool {
	at := offsetIn(text, b)
	return at == offsetIn(text, a)+len(a)+1 && text[at-1] == ' '
}

// offsetIn is where sub, a substring of s (or of a string s is a
// substring of), starts relative to s.
func offsetIn(s, sub string) int {
	return int(uintptr(unsafe.Pointer(unsafe.StringData(sub))) - uintptr(unsafe.Pointer(unsafe.StringData(s))))
}

// lineNoOf finds where the i-th target line (0-based) of text is, again:
// only an error needs it, so it is not stored for every line.
func lineNoOf(text string, i int) int {
	found := 0
	eachLine(text, func(lineNo int, _ []string) error {
		if i == 0 {
			found = lineNo
			return errStop
		}
		i--
		return nil
	})
	return found
}

// build makes the table: its targets, opening each backing path once, and
// its index. A device that cannot be opened or is too small is refused as a
// *LineError, with everything opened so far closed again.
func (b *builder) build(opts Options) (*Table, error) {
	n := len(b.begins)
	if n == 0 {
		return nil, fmt.Errorf("table: %w", ErrEmpty)
	}
	t := &Table{
		lines:   lineStore{text: b.text, side: string(b.side), begins: exact(b.begins), verbatim: b.verbatim},
		targets: make([]targets.Target, n),
		starts:  exact(append(b.starts, int64(b.next)*targets.SectorSize)),
		devs:    targets.NewDevSetWith(opts.ReadOnly, opts.Open),
		stats:   newSegStats(n),
		wake:    make(chan struct{}, 1),
	}
	if err := b.makeTargets(t); err != nil {
		t.abandon()
		return nil, err
	}
	if err := b.checkAlignment(t); err != nil {
		t.abandon()
		return nil, err
	}
	if bs := t.LogicalBlockSize(); bs > targets.SectorSize {
		t.blockMask = int64(bs) - 1
	}
	var err error
	if t.index, err = btree.BuildFunc(n, func(i int) uint64 { return t.sector(i+1) - 1 }); err != nil {
		t.abandon()
		return nil, fmt.Errorf("table: %w", err)
	}
	return t, nil
}

// makeTargets makes each line's target. The arguments handed to Type.New
// are substrings of the table's own text, in a slice reused from line to
// line (no target type keeps the slice itself).
func (b *builder) makeTargets(t *Table) error {
	var fields []string
	var typ *targets.Type
	for i := range t.targets {
		fields = t.lines.fields(fields[:0], i)
		var err error
		if typ == nil || typ.Name != fields[0] {
			typ, err = targets.Lookup(fields[0])
		}
		if err == nil {
			t.targets[i], err = typ.New(fields[1:], t.sector(i+1)-t.sector(i), t.devs)
		}
		areas := t.devs.TakeAreas() // this target's, even if New failed
		if err == nil {
			err = b.checkAreas(i, t.targets[i], areas)
		}
		if err == nil {
			t.devCaps.stack(t.targets[i], areas)
		}
		if p, ok := t.targets[i].(targets.Placer); ok && err == nil {
			p.Place(t.sector(i))
		}
		if err != nil {
			return &LineError{Line: b.lineNo(i), Err: fmt.Errorf("%s: %w", fields[0], err)}
		}
	}
	return nil
}

// exact returns s in an array of its own length when appending left it
// holding much more: the table keeps these for its whole life.
func exact[T any](s []T) []T {
	if cap(s)-len(s) <= len(s)/16 {
		return s
	}
	return append(make([]T, 0, len(s)), s...)
}
