package table

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/pkg/targets"
)

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, text string
		line       int
		want       error
	}{
		{"empty", "# nothing\n\n", 0, ErrEmpty},
		{"not at zero", "8 8 zero", 1, ErrNotAtZero},
		{"gap", "0 8 zero\n16 8 zero", 2, ErrGap},
		{"overlap", "0 8 zero\n4 8 zero", 2, ErrOverlap},
		{"zero length", "0 0 zero", 1, ErrZeroLength},
		{"zero length later", "0 8 zero\n8 0 zero", 2, ErrZeroLength},
		{"unknown type", "0 8 mirror a b", 1, targets.ErrUnknownType},
		{"too few fields", "0 8", 1, ErrFields},
		{"linear arg count", "0 8 linear /dev/x", 1, targets.ErrArgCount},
		{"linear arg count extra", "0 8 linear /dev/x 0 1", 1, targets.ErrArgCount},
		{"zero arg count", "0 8 zero extra", 1, targets.ErrArgCount},
		{"start not a number", "zero 8 zero", 1, targets.ErrNotNumber},
		{"length not a number", "0 8x zero", 1, targets.ErrNotNumber},
		{"length hex", "0 0x10 zero", 1, targets.ErrNotNumber},
		{"length two plus signs", "0 ++8 zero", 1, targets.ErrNotNumber},
		{"offset plus sign", "0 8 linear /dev/x +1", 1, targets.ErrNotNumber},
		{"negative start", "-8 8 zero", 1, targets.ErrNegative},
		{"negative length", "0 -8 zero", 1, targets.ErrNegative},
		{"negative offset", "0 8 linear /dev/x -1", 1, targets.ErrNegative},
		{"offset not a number", "0 8 linear /dev/x abc", 1, targets.ErrNotNumber},
		{"overflow", "0 99999999999999999999 zero", 1, targets.ErrOverflow},
		{"table too big", "0 18014398509481984 zero", 1, ErrTooBig},
		{"linear offset overflow", "0 8 linear /dev/x 18446744073709551615", 1, targets.ErrOverflow},
		{"stripes zero", "0 8 striped 0 8", 1, targets.ErrStripes},
		{"chunk zero", "0 16 striped 2 0 /a 0 /b 0", 1, targets.ErrChunk},
		{"stripes arg count", "0 16 striped 2 8 /a 0", 1, targets.ErrArgCount},
		{"stripes arg count huge", "0 16 striped 1000000 8 /a 0", 1, targets.ErrArgCount},
		{"stripes not a number", "0 16 striped two 8 /a 0 /b 0", 1, targets.ErrNotNumber},
		{"stripes two plus signs", "0 16 striped ++2 8 /a 0 /b 0", 1, targets.ErrNotNumber},
		{"stripe offset plus sign", "0 16 striped 2 8 /a +0 /b 0", 1, targets.ErrNotNumber},
		{"chunk negative", "0 16 striped 2 -8 /a 0 /b 0", 1, targets.ErrNegative},
		{"stripe offset bad", "0 16 striped 2 8 /a 0 /b x", 1, targets.ErrNotNumber},
		{"length not divisible by stripes", "0 15 striped 2 1 /a 0 /b 0", 1, targets.ErrStripeLength},
		{"stripe length not divisible by chunk", "0 24 striped 2 8 /a 0 /b 0", 1, targets.ErrChunkLength},
		{"striped too few args", "0 16 striped 2", 1, targets.ErrArgCount},
		{"error on line 4 after comments", "# c\n\n0 8 zero\n8 8 bogus", 4, targets.ErrUnknownType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.text)
			if !errors.Is(err, c.want) {
				t.Fatalf("Parse(%q) err = %v, want %v", c.text, err, c.want)
			}
			var le *LineError
			if c.line == 0 {
				if errors.As(err, &le) {
					t.Fatalf("got line error %v, want a whole-table error", err)
				}
				return
			}
			if !errors.As(err, &le) || le.Line != c.line {
				t.Fatalf("err = %v, want it on line %d", err, c.line)
			}
			if !strings.HasPrefix(err.Error(), "table: line ") {
				t.Fatalf("error %q does not start with 'table: line N'", err)
			}
		})
	}
}

func TestParseFormatRoundTrip(t *testing.T) {
	in := "# a comment\n\n0   2048 linear /dev/sda 0010\n" +
		"2048 4096  striped +2 +64 /a 0 /b 000\n\t6144 +8 zero\n+6152 8 error ignored args\n"
	want := "0 2048 linear /dev/sda 10\n2048 4096 striped 2 64 /a 0 /b 0\n6144 8 zero\n6152 8 error\n"
	lines, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := Format(lines); got != want {
		t.Fatalf("Format = %q\nwant     %q", got, want)
	}
	again, err := Parse(Format(lines))
	if err != nil {
		t.Fatal(err)
	}
	if got := Format(again); got != want {
		t.Fatalf("second round = %q", got)
	}
	for i := range lines {
		lines[i].LineNo, again[i].LineNo = 0, 0
	}
	if !reflect.DeepEqual(lines, again) {
		t.Fatalf("re-parse differs:\n%v\n%v", lines, again)
	}
}

func TestNewRefusesSmallOrMissingDevice(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, make([]byte, 8*512), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		text string
		line int
		want error
	}{
		{"0 8 zero\n8 16 linear " + small + " 0", 2, targets.ErrDeviceTooSmall},
		{"0 8 linear " + small + " 1", 1, targets.ErrDeviceTooSmall},
		{"0 16 striped 2 4 " + small + " 0 " + small + " 5", 1, targets.ErrDeviceTooSmall},
		{"0 8 linear " + filepath.Join(dir, "missing") + " 0", 1, os.ErrNotExist},
		{"0 8 linear /dev/null 0", 1, targets.ErrBadDevice},
	}
	for _, c := range cases {
		_, err := FromText(c.text, false)
		var le *LineError
		if !errors.Is(err, c.want) || !errors.As(err, &le) || le.Line != c.line {
			t.Errorf("FromText(%q) = %v, want %v on line %d", c.text, err, c.want, c.line)
		}
	}
	// Exactly big enough is fine, and a path used twice is opened once.
	tb, err := FromText("0 4 linear "+small+" 4\n4 8 striped 2 4 "+small+" 0 "+small+" 4", false)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tb.Devs().Devs()); n != 1 {
		t.Errorf("%d devices open for one path, want 1", n)
	}
	if _, err := tb.destroy(discardLog(), false); err != nil {
		t.Fatal(err)
	}
}

// FuzzParse checks that Parse never panics, and that whatever it accepts
// formats to text that parses to the same thing.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.table")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, text string) {
		lines, err := Parse(text)
		if err != nil {
			if lines != nil {
				t.Fatal("lines returned with an error")
			}
			return
		}
		out := Format(lines)
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("formatted table %q does not parse: %v", out, err)
		}
		if Format(again) != out {
			t.Fatalf("round trip changed %q to %q", out, Format(again))
		}
	})
}
