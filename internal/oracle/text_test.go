package oracle

import (
	"strings"
	"testing"
)

// A crypt table compares as printed and with keys shown: a key that
// differs only in the shown form is caught; a side without --showkeys is
// compared in the one form it has, with a note.
func TestCompareTextCryptKeys(t *testing.T) {
	const size = 8192 * 512
	masked := "0 8 crypt aes 0000 0 $0 0\n"
	a, b := newFake(t, "dm", size), newFake(t, "gdm", size)
	a.tables["c"], b.tables["c"] = masked, masked
	a.keys, b.keys = "0 8 crypt aes 00ff 0 $0 0\n", "0 8 crypt aes 00fe 0 $0 0\n"
	rn := &Runner{A: a, B: b}
	rep := &Report{}
	rn.compareText(rep, "c", "now")
	if len(rep.Diffs) != 1 || !strings.Contains(rep.Diffs[0], "table --showkeys now differs") {
		t.Fatalf("a wrong key passed or more differs: %q", rep.Diffs)
	}
	b.noKeys, b.tables["c"] = true, a.keys
	rep = &Report{}
	rn.compareText(rep, "c", "now")
	if !rep.OK() || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "no table --showkeys") {
		t.Fatalf("keys in gdm's plain table: %q %q", rep.Diffs, rep.Notes)
	}
}

// A log-writes status line compares only in whether logging stopped; the
// other lines of the status still compare as text.
func TestCompareTextLogWritesStatus(t *testing.T) {
	const size = 8192 * 512
	a, b := newFake(t, "dm", size), newFake(t, "gdm", size)
	a.tables["l"], b.tables["l"] = "0 8 log-writes $0 $0\n", "0 8 log-writes $0 $0\n"
	a.status, b.status = "0 8 log-writes 10 200\n8 8 zero\n", "0 8 log-writes 12 230\n8 8 zero\n"
	rn := &Runner{A: a, B: b}
	rep := &Report{}
	if rn.compareText(rep, "l", "now"); !rep.OK() || rn.logFull {
		t.Fatalf("counts compared: %q", rep.Diffs)
	}
	b.status = "0 8 log-writes 12 230 logging_disabled\n8 8 zero\n"
	rep = &Report{}
	if rn.compareText(rep, "l", "now"); len(rep.Diffs) != 1 {
		t.Fatalf("logging stopped on one side only passed: %q", rep.Diffs)
	}
	b.status = "0 8 log-writes 10 200\n8 8 error\n"
	rep = &Report{}
	if rn.compareText(rep, "l", "now"); len(rep.Diffs) != 1 || !strings.Contains(rep.Diffs[0], "error") {
		t.Fatalf("another line's difference passed: %q", rep.Diffs)
	}
}
