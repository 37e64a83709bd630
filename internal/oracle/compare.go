package oracle

import (
	"bytes"
	"fmt"
	"strings"
)

// Report is one case's outcome: no Diffs means dm and gdm agreed on all.
type Report struct {
	Case  string
	Seed  uint64
	Ops   int
	Diffs []string
	// Notes say what was left uncompared, and why; they do not fail.
	Notes []string
}

// Line is a report as the guest prints it (one JSON object after
// "ORACLE-CASE ") and the host reads it.
type Line struct {
	Case  string   `json:"case"`
	Seed  uint64   `json:"seed"`
	Ops   int      `json:"ops"`
	Diffs []string `json:"diffs"`
	Notes []string `json:"notes"`
	Text  string   `json:"text"`
	// Seconds is how long the case took in the guest (under TCG: a
	// measure of the harness, not of gdm).
	Seconds float64 `json:"seconds"`
}

// Line is the report as one JSON line's fields.
func (r *Report) Line(seconds float64) Line {
	return Line{Case: r.Case, Seed: r.Seed, Ops: r.Ops, Diffs: r.Diffs, Notes: r.Notes, Text: r.String(), Seconds: seconds}
}

// OK is a case with no difference.
func (r *Report) OK() bool { return len(r.Diffs) == 0 }

// note adds a note once.
func (r *Report) note(n string) {
	for _, have := range r.Notes {
		if have == n {
			return
		}
	}
	r.Notes = append(r.Notes, n)
}

func (r *Report) addf(format string, args ...any) {
	r.Diffs = append(r.Diffs, fmt.Sprintf(format, args...))
}

// String is the report as the harness prints it: the case, its seed (to
// replay it), and each difference with both sides' text or bytes.
func (r *Report) String() string {
	var b strings.Builder
	verdict := "same"
	if !r.OK() {
		verdict = fmt.Sprintf("%d difference(s)", len(r.Diffs))
	}
	fmt.Fprintf(&b, "case %s (seed %d, %d ops): %s", r.Case, r.Seed, r.Ops, verdict)
	for _, n := range r.Notes {
		b.WriteString("\n  note: " + n)
	}
	for _, d := range r.Diffs {
		b.WriteString("\n  ")
		b.WriteString(strings.ReplaceAll(d, "\n", "\n  "))
	}
	return b.String()
}

// firstDiff is the index of the first byte where a and b differ, or -1.
func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i += 512 {
		j := min(i+512, n)
		if !bytes.Equal(a[i:j], b[i:j]) {
			for k := i; k < j; k++ {
				if a[k] != b[k] {
					return k
				}
			}
		}
	}
	if len(a) != len(b) {
		return n
	}
	return -1
}

// dataDiff describes where two buffers that stand for the bytes at base
// first differ: the byte and sector, and 32 bytes of each side from the
// 16-byte line holding it. "" when they are equal.
func dataDiff(nameA, nameB string, a, b []byte, base int64) string {
	i := firstDiff(a, b)
	if i < 0 {
		return ""
	}
	at := base + int64(i)
	from := i &^ 15
	differing := 0
	for s := i &^ 511; s < min(len(a), len(b)); s += 512 {
		if !bytes.Equal(a[s:min(s+512, len(a))], b[s:min(s+512, len(b))]) {
			differing++
		}
	}
	return fmt.Sprintf("first difference at byte %d (sector %d, +%d into the range); %d sector(s) differ from there\n  %-3s %s\n  %-3s %s",
		at, at/512, i, differing, nameA, hexLine(a, from, base), nameB, hexLine(b, from, base))
}

// hexLine prints 32 bytes of p from from, with their device offset.
func hexLine(p []byte, from int, base int64) string {
	end := min(from+32, len(p))
	if from >= end {
		return fmt.Sprintf("%#010x: (no data)", base+int64(from))
	}
	return fmt.Sprintf("%#010x: % x", base+int64(from), p[from:end])
}

// textDiff compares what the two sides printed for one question (table,
// status) after their device names were made $N; "" when equal.
func textDiff(what, nameA, nameB, a, b string) string {
	if a == b {
		return ""
	}
	return fmt.Sprintf("%s differs:\n  %-3s %q\n  %-3s %q", what, nameA, a, nameB, b)
}
