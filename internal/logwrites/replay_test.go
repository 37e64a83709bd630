package logwrites

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// memDev is a device in memory that records discards.
type memDev struct {
	b        []byte
	discards int
}

func (m *memDev) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }
func (m *memDev) Discard(off, n int64) error {
	m.discards++
	clear(m.b[off : off+n])
	return nil
}

// logBuilder writes a log by hand for the reader and replay tests.
type logBuilder struct{ entries [][]byte }

func (b *logBuilder) write(sector uint64, fill byte, sectors int, flags uint64) {
	e := AppendEntry(nil, Entry{Sector: sector, NrSectors: uint64(sectors), Flags: flags}, "", 512)
	b.entries = append(b.entries, append(e, bytes.Repeat([]byte{fill}, sectors*512)...))
}
func (b *logBuilder) flush() { b.write(0, 0, 0, FlagFlush) }
func (b *logBuilder) discard(s, n uint64) {
	b.entries = append(b.entries, AppendEntry(nil, Entry{Sector: s, NrSectors: n, Flags: FlagDiscard}, "", 512))
}
func (b *logBuilder) mark(name string) {
	b.entries = append(b.entries, AppendEntry(nil, Entry{Flags: FlagMark}, name, 512))
}

// bytes is the log, its super counting count entries (-1: all).
func (b *logBuilder) bytes(count int) []byte {
	if count < 0 {
		count = len(b.entries)
	}
	return bytes.Join(append([][]byte{AppendSuper(nil, Super{NrEntries: uint64(count), SectorSize: 512})}, b.entries...), nil)
}

// sample: 0 write s1=A, 1 write s2=B, 2 flush, 3 mark one, 4 FUA s1=C,
// 5 discard s2, 6 flush, 7 mark two, 8 write s3=D.
func sample() *logBuilder {
	var b logBuilder
	b.write(1, 'A', 1, 0)
	b.write(2, 'B', 1, 0)
	b.flush()
	b.mark("one")
	b.write(1, 'C', 1, FlagFUA)
	b.discard(2, 1)
	b.flush()
	b.mark("two")
	b.write(3, 'D', 1, 0)
	return &b
}

// state is the 4-sector device as one letter a sector (0 for zeros).
func state(m *memDev) string {
	s := ""
	for i := 0; i < len(m.b); i += 512 {
		s += string(m.b[i])
	}
	return s
}

func replay(t *testing.T, log []byte, o Options) (string, uint64, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	m := &memDev{b: make([]byte, 4*512)}
	n, err := Replay(r, m, o)
	return state(m), n, err
}

func TestReplayStops(t *testing.T) {
	log := sample().bytes(-1)
	for _, c := range []struct {
		name string
		o    Options
		want string
		n    uint64
	}{
		{"all", Options{}, "\x00C\x00D", 9},
		{"limit 1", Options{Limit: 1}, "\x00A\x00\x00", 1},
		{"limit 5", Options{Limit: 5}, "\x00CB\x00", 5},
		{"end mark one", Options{EndMark: "one"}, "\x00AB\x00", 4},
		{"end mark two", Options{EndMark: "two"}, "\x00C\x00\x00", 8},
		{"start mark two", Options{StartMark: "two"}, "\x00\x00\x00D", 1},
		{"start one end two", Options{StartMark: "one", EndMark: "two"}, "\x00C\x00\x00", 4},
		{"no discard", Options{NoDiscard: true}, "\x00CBD", 9},
	} {
		got, n, err := replay(t, log, c.o)
		if err != nil || got != c.want || n != c.n {
			t.Errorf("%s: %q after %d entries (%v), want %q after %d", c.name, got, n, err, c.want, c.n)
		}
	}
}

// Only the entries the super block counts are replayed, as in replay-log.
func TestReplayFollowsSuperCount(t *testing.T) {
	got, n, err := replay(t, sample().bytes(2), Options{})
	if err != nil || got != "\x00AB\x00" || n != 2 {
		t.Fatalf("%q after %d (%v)", got, n, err)
	}
}

func TestReplayMissingMarks(t *testing.T) {
	log := sample().bytes(-1)
	if _, _, err := replay(t, log, Options{StartMark: "nope"}); !errors.Is(err, ErrStartMark) {
		t.Errorf("start mark: %v", err)
	}
	if got, n, err := replay(t, log, Options{EndMark: "nope"}); !errors.Is(err, ErrEndMark) || n != 9 || got != "\x00C\x00D" {
		t.Errorf("end mark: %q %d %v", got, n, err)
	}
}

// Checks run after the entries they pick, on the device as replayed so
// far; a failing check stops the replay there.
func TestReplayChecks(t *testing.T) {
	log := sample().bytes(-1)
	for _, c := range []struct {
		name string
		at   func(Record) bool
		want string
	}{
		{"flush", CheckFlags(FlagFlush), "2:\x00AB\x00 6:\x00C\x00\x00 "},
		{"fua", CheckFlags(FlagFUA), "4:\x00CB\x00 "},
		{"mark", CheckFlags(FlagMark), "3:\x00AB\x00 7:\x00C\x00\x00 "},
		{"every 4", CheckEvery(4), "3:\x00AB\x00 7:\x00C\x00\x00 "},
	} {
		r, _ := NewReader(bytes.NewReader(log))
		m := &memDev{b: make([]byte, 4*512)}
		seen := ""
		_, err := Replay(r, m, Options{CheckAt: c.at, Check: func(rec Record) error {
			seen += fmt.Sprintf("%d:%s ", rec.Index, state(m))
			return nil
		}})
		if err != nil || seen != c.want {
			t.Errorf("%s: checks saw %q (%v), want %q", c.name, seen, err, c.want)
		}
	}
	r, _ := NewReader(bytes.NewReader(log))
	bad := errors.New("fsck failed")
	n, err := Replay(r, &memDev{b: make([]byte, 4*512)}, Options{CheckAt: CheckFlags(FlagFlush), Check: func(Record) error { return bad }})
	if !errors.Is(err, bad) || n != 3 {
		t.Fatalf("failing check: %d entries, %v", n, err)
	}
}

// A log cut short inside an entry's data is an error, not a short replay.
func TestReplayTruncatedLog(t *testing.T) {
	log := sample().bytes(-1)
	r, _ := NewReader(bytes.NewReader(log[:512+512+100]))
	_, err := Replay(r, &memDev{b: make([]byte, 4*512)}, Options{})
	if !errors.Is(err, ErrShort) {
		t.Fatalf("%v", err)
	}
	if _, err := NewReader(bytes.NewReader(nil)); !errors.Is(err, io.EOF) {
		t.Fatalf("empty log: %v", err)
	}
}
