// Package table holds gdm's dm tables and the devices that serve them.
//
// A Table is an immutable list of targets with a btree index over their
// sectors. A Device has a live slot and an inactive slot, each holding at
// most one table. The rules come from the kernel patch "dm table: rework
// reference counting" (shared/seed):
//
//   - A table has exactly one uncounted reference: the slot holding it.
//   - Temporary users (each I/O, status, block status, metrics) take Get and
//     give back Put; they count in holders.
//   - A table is destroyed only by the Device operations that take it out of
//     its slot (load over an inactive table, resume, clear, close), never by a
//     Put. Destroy waits for holders to drain, then closes the table's backing
//     devices exactly once.
package table

import (
	"errors"
	"fmt"
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
// `#` are skipped. Targets must start at sector 0 and adjoin. Arguments are
// checked by their target type, without opening any device (New does that).
func Parse(text string) ([]Line, error) {
	var lines []Line
	var next uint64 // the sector the next target must start at
	for i, raw := range strings.Split(text, "\n") {
		lineNo := i + 1
		fields := strings.Fields(raw)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		fail := func(err error) ([]Line, error) { return nil, &LineError{Line: lineNo, Err: err} }
		if len(fields) < 3 {
			return fail(ErrFields)
		}
		// dmsetup reads start and length with sscanf's %llu, which takes
		// one leading '+' ("0 +8 zero" is a table dm accepts).
		start, err := targets.ParseNumber(strings.TrimPrefix(fields[0], "+"))
		if err != nil {
			return fail(fmt.Errorf("start: %w", err))
		}
		length, err := targets.ParseNumber(strings.TrimPrefix(fields[1], "+"))
		if err != nil {
			return fail(fmt.Errorf("length: %w", err))
		}
		switch {
		case length == 0:
			return fail(ErrZeroLength)
		case len(lines) == 0 && start != 0:
			return fail(fmt.Errorf("%w, not %d", ErrNotAtZero, start))
		case start > next:
			return fail(fmt.Errorf("%w before sector %d: previous target ends at %d", ErrGap, start, next))
		case start < next:
			return fail(fmt.Errorf("%w at sector %d: previous target ends at %d", ErrOverlap, start, next))
		case length > maxSectors-start:
			return fail(fmt.Errorf("%w (%d)", ErrTooBig, uint64(maxSectors)))
		}
		typ, err := targets.Lookup(fields[2])
		if err != nil {
			return fail(err)
		}
		args, err := typ.Check(fields[3:], length)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", typ.Name, err))
		}
		lines = append(lines, Line{Start: start, Length: length, Type: typ.Name, Args: args, LineNo: lineNo})
		next = start + length
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("table: %w", ErrEmpty)
	}
	return lines, nil
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
