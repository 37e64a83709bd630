package table

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// TestTableKeepsLinesAsParsed checks the compact line store against Parse:
// canonical lines are kept as slices of the text, the others as canonical
// copies, and either way the table gives back Parse's lines and Format's
// text; a text that is canonical throughout is its own Text.
func TestTableKeepsLinesAsParsed(t *testing.T) {
	dir := t.TempDir()
	a := testkit.Sparse(t, dir, "a", 1<<20)
	b := testkit.Sparse(t, dir, "b", 1<<20)
	u := testkit.Sparse(t, dir, "a\u3000b\u00a0", 1<<20) // Unicode's spaces do not split
	texts := map[string]string{
		"canonical":        "0 8 linear " + a + " 0\n8 16 striped 2 8 " + a + " 8 " + b + " 0\n24 8 zero\n32 8 error\n",
		"no final newline": "0 8 linear " + a + " 0\n8 8 linear " + b + " 16",
		"spaces and tabs":  "0  8 linear " + a + "  0\n8 8\tlinear\t" + b + " 16\n16 8 linear " + a + "\t8\n",
		"trailing space":   "0 8 linear " + a + " 0 \n8 8 zero\t\n16 8 error \n",
		"leading zeros":    "0 8 linear " + a + " 0008\n8 16 striped 2 08 " + a + " 0 " + b + " 00\n",
		"crlf":             "0 8 linear " + a + " 0\r\n8 8 zero\r\n",
		"comments":         "# header\n\n0 8 zero\n  # indented\n8 8 linear " + a + " 0\n",
		"unicode spaces":   "0 8 linear " + u + " 00\n8 8 error \u00a0 \u2003\n",
		"zero-led start":   "0 8 zero\n08 8 error\n",
		"blank line last":  "0 8 zero\n8 8 error\n\n",
	}
	for name, text := range texts {
		t.Run(name, func(t *testing.T) {
			want, err := Parse(text)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				want[i].LineNo = 0
			}
			tb := mustTable(t, text)
			defer tb.destroy(discardLog(), false)
			if got := tb.Lines(); !reflect.DeepEqual(got, want) {
				t.Errorf("Lines() =\n%q\nwant\n%q", got, want)
			}
			if tb.Len() != len(want) {
				t.Errorf("Len() = %d, want %d", tb.Len(), len(want))
			}
			if tb.Verbatim() != (name == "canonical") {
				t.Errorf("Verbatim() = %v: Text is the text only for the canonical one", tb.Verbatim())
			}
			if got, w := tb.Text(), Format(want); got != w {
				t.Errorf("Text() = %q, want %q", got, w)
			}
			var buf bytes.Buffer
			if err := tb.WriteText(&buf); err != nil || buf.String() != Format(want) {
				t.Errorf("WriteText = %q, %v", buf.String(), err)
			}
		})
	}
}

func TestNewRefusesArgumentsTextCannotCarry(t *testing.T) {
	for _, arg := range []string{"", "/a b", "/a\tb", "/a\nb"} {
		lines := []Line{{Start: 0, Length: 8, Type: "zero", LineNo: 1}, {Start: 8, Length: 8, Type: "linear", Args: []string{arg, "0"}, LineNo: 2}}
		_, err := New(lines, false)
		var le *LineError
		if !errors.Is(err, ErrArg) || !errors.As(err, &le) || le.Line != 2 {
			t.Errorf("argument %q: err = %v, want ErrArg on line 2", arg, err)
		}
	}
}

// TestOpenErrorsNameTheirLine: devices are opened in a second pass over
// the stored lines, which must still say which line of the text failed.
func TestOpenErrorsNameTheirLine(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	text := "# c\n\n0 8 zero\n  \n# d\n8 8 linear " + missing + " 0\n16 8 zero\n"
	_, err := FromText(text, false)
	var le *LineError
	if !errors.Is(err, os.ErrNotExist) || !errors.As(err, &le) || le.Line != 6 {
		t.Fatalf("err = %v, want a missing device on line 6", err)
	}
}

// TestAppendFieldsIsStringsFields compares the allocation-free splitter
// with strings.FieldsFunc at ASCII white space, on random lines of
// spaces, Unicode spaces (which do not split, as in dm) and text.
func TestAppendFieldsIsStringsFields(t *testing.T) {
	ascii := func(r rune) bool { return r < 0x80 && asciiSpace[r] }
	r := rand.New(rand.NewPCG(9, 10))
	pieces := []string{" ", "\t", "\r", "\v", "\f", "a", "bc", "/dev/x", "0", "\u00a0", "\u2003", "é", "#"}
	for range 20000 {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		line := b.String()
		got, want := appendFields([]string{"kept"}, line), append([]string{"kept"}, strings.FieldsFunc(line, ascii)...)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("appendFields(%q) = %q, want %q", line, got, want)
		}
	}
}

// TestSegmentStatsAreMadeOnFirstIO: a target's counters cost nothing until
// its first I/O, read as zeros, and count every op of racing first I/Os.
func TestSegmentStatsAreMadeOnFirstIO(t *testing.T) {
	var text strings.Builder
	for i := range 200 {
		fmt.Fprintf(&text, "%d 8 zero\n", i*8)
	}
	tb := mustTable(t, text.String())
	defer tb.destroy(discardLog(), false)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := tb.ReadAt(context.Background(), make([]byte, 512), 130*8*512); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	made := 0
	for k := range tb.stats.chunks {
		if tb.stats.chunks[k].Load() != nil {
			made++
		}
	}
	if made != 1 {
		t.Errorf("%d chunks of counters made, want 1 (for target 130 only)", made)
	}
	var seen []int
	tb.EachSegment(func(i int, s OpSnapshot) {
		seen = append(seen, i)
		if s.Ops[OpRead] != 8 {
			t.Errorf("target %d: %d reads counted, want 8", i, s.Ops[OpRead])
		}
	})
	if !reflect.DeepEqual(seen, []int{130}) {
		t.Errorf("EachSegment visited %v, want [130]", seen)
	}
	snap := tb.SegmentSnapshot()
	if len(snap) != 200 || snap[130].Ops[OpRead] != 8 || snap[129] != (OpSnapshot{}) {
		t.Errorf("SegmentSnapshot: %d entries, target 130 %v, 129 %v", len(snap), snap[130], snap[129])
	}
}

// TestSegmentStatsFirstIOsRace races first I/Os on fresh counters, many
// times: of two counters made at once one must win, with both counts in it.
func TestSegmentStatsFirstIOsRace(t *testing.T) {
	for round := range 2000 {
		s := newSegStats(1)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				<-start
				s.record(0, OpWrite, 512, nil)
			})
		}
		close(start)
		wg.Wait()
		if got := s.chunks[0].Load()[0].Snapshot().Ops[OpWrite]; got != 4 {
			t.Fatalf("round %d: %d of 4 racing first writes counted", round, got)
		}
	}
}
