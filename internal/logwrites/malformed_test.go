package logwrites

import (
	"bytes"
	"errors"
	"testing"
)

// An entry sector that no writer of the format makes stops a replay with
// ErrMalformed, as replay-log's "Malformed entry" does, instead of being
// replayed as a no-op: all zeros (a log whose super counts entries it
// never got, past the end of what was written), or a non-mark entry with
// bytes after its header (not an entry sector at all).
func TestReplayRefusesMalformedEntries(t *testing.T) {
	zeros := sample()
	zeros.entries = append(zeros.entries[:2], make([]byte, 512))
	garbage := sample()
	garbage.entries[2][EntryLen] = 'x' // the flush entry
	for name, b := range map[string]*logBuilder{"all zeros": zeros, "bytes after a flush's header": garbage} {
		st, n, err := replay(t, b.bytes(-1), Options{})
		if !errors.Is(err, ErrMalformed) || n != 2 || st != "\x00AB\x00" {
			t.Errorf("%s: replayed %d entries to %q, err %v; want 2, \"\\x00AB\\x00\" and ErrMalformed", name, n, st, err)
		}
	}
	// A mark's name is where a plain entry must have zeros.
	if _, n, err := replay(t, sample().bytes(-1), Options{}); err != nil || n != 9 {
		t.Fatalf("sample: %d entries, %v", n, err)
	}
	// A write of zero sectors with flags is legal (an empty flush is one).
	if _, _, err := DecodeEntry(AppendEntry(nil, Entry{Flags: FlagFlush}, "", 512)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := DecodeEntry(bytes.Repeat([]byte{0}, 512)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("zero sector: %v", err)
	}
}
