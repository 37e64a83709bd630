package table

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gdm-project/gdm/pkg/targets"
)

// Errors a table text can be refused with, each inside a *LineError that
// says where. Test with errors.Is; target argument errors are targets.Err*.
var (
	ErrEmpty      = errors.New("table has no targets")
	ErrFields     = errors.New("need <start> <length> <type> [args...]")
	ErrNotAtZero  = errors.New("first target must start at sector 0")
	ErrGap        = errors.New("gap")
	ErrOverlap    = errors.New("overlap")
	ErrZeroLength = errors.New("zero length")
	ErrTooBig     = errors.New("table ends past the largest sector")
)

// LineError is a table refused because of one line.
type LineError struct {
	Line int // 1-based line number in the text
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("table: line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Line is one parsed target line, with its arguments in canonical form.
type Line struct {
	Start  uint64 // sectors
	Length uint64 // sectors
	Type   string
	Args   []string
	LineNo int // where it came from in the text (0 if built by code)
}

// String formats the line the way dmsetup table prints it.
func (l Line) String() string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(l.Start, 10))
	b.WriteByte(' ')
	b.WriteString(strconv.FormatUint(l.Length, 10))
	b.WriteByte(' ')
	b.WriteString(l.Type)
	for _, a := range l.Args {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	return b.String()
}

// maxSectors keeps every byte offset of a table inside an int64.
const maxSectors = (1<<63 - 1) / targets.SectorSize

// Parse reads dmsetup table text: one target a line, `<start> <length>
// <type> <args>` in 512-byte sectors; blank lines and lines starting with
// `#` are skipped, and a `#` after the type ends the line's arguments (as
// dmsetup cuts them). Targets must start at sector 0 and adjoin. Arguments are
// checked by their target type, without opening any device (New does that).
func Parse(text string) ([]Line, error) {
	var lines []Line
	var next uint64 // the sector the next target must start at
	err := eachLine(text, func(lineNo int, fields []string) error {
		l, err := checkLine(fields, next, len(lines) == 0)
		if err != nil {
			return &LineError{Line: lineNo, Err: err}
		}
		l.Args = slices.Clone(l.Args) // not the fields buffer, whatever Check returned
		l.LineNo = lineNo
		lines = append(lines, l)
		next = l.Start + l.Length
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("table: %w", ErrEmpty)
	}
	return lines, nil
}

// checkLine checks one line's fields, for a target that must start at
// sector next (at 0 if it is the first), and returns it in canonical form.
func checkLine(fields []string, next uint64, first bool) (Line, error) {
	if len(fields) < 3 {
		return Line{}, ErrFields
	}
	// dmsetup reads start and length with sscanf's %llu, which takes one
	// leading '+' ("0 +8 zero" is a table dm accepts).
	start, err := targets.ParseNumber(strings.TrimPrefix(fields[0], "+"))
	if err != nil {
		return Line{}, fmt.Errorf("start: %w", err)
	}
	length, err := targets.ParseNumber(strings.TrimPrefix(fields[1], "+"))
	if err != nil {
		return Line{}, fmt.Errorf("length: %w", err)
	}
	switch {
	case length == 0:
		return Line{}, ErrZeroLength
	case first && start != 0:
		return Line{}, fmt.Errorf("%w, not %d", ErrNotAtZero, start)
	case start > next:
		return Line{}, fmt.Errorf("%w before sector %d: previous target ends at %d", ErrGap, start, next)
	case start < next:
		return Line{}, fmt.Errorf("%w at sector %d: previous target ends at %d", ErrOverlap, start, next)
	case length > maxSectors-start:
		return Line{}, fmt.Errorf("%w (%d)", ErrTooBig, uint64(maxSectors))
	}
	typ, err := targets.Lookup(fields[2])
	if err != nil {
		return Line{}, err
	}
	args, err := typ.Check(fields[3:], length)
	if err != nil {
		return Line{}, fmt.Errorf("%s: %w", typ.Name, err)
	}
	return Line{Start: start, Length: length, Type: typ.Name, Args: args}, nil
}

// Format writes lines as canonical table text, one line each, so that
// Parse(Format(lines)) gives the same lines back.
func Format(lines []Line) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.String())
		b.WriteByte('\n')
	}
	return b.String()
}
