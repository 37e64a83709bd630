package logwrites

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// boundedDev is a small device that refuses what lies past its end, as a
// file on a full disk or a block device would, instead of growing.
type boundedDev struct{ b []byte }

var errPastEnd = errors.New("past the device's end")

func (d *boundedDev) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(d.b)) || int64(len(p)) > int64(len(d.b))-off {
		return 0, errPastEnd
	}
	return copy(d.b[off:], p), nil
}

func (d *boundedDev) Discard(off, n int64) error {
	if off < 0 || n < 0 || off > int64(len(d.b)) || n > int64(len(d.b))-off {
		return errPastEnd
	}
	clear(d.b[off : off+n])
	return nil
}

// FuzzReplay feeds arbitrary logs to the reader and a replay: whatever
// the bytes (a super counting 2^64 entries, sector counts near 2^64,
// marks of any length), it must end with an error or io.EOF, never a
// panic, and read no entry past the log's end.
func FuzzReplay(f *testing.F) {
	f.Add(sample().bytes(-1))
	f.Add(sample().bytes(3))
	f.Add(AppendSuper(nil, Super{NrEntries: ^uint64(0), SectorSize: 512}))
	var huge logBuilder
	huge.entries = append(huge.entries, AppendEntry(nil, Entry{Sector: 1<<53 - 1, NrSectors: 1 << 53, Flags: FlagDiscard}, "", 512))
	huge.entries = append(huge.entries, AppendEntry(nil, Entry{NrSectors: ^uint64(0)}, "", 512))
	f.Add(huge.bytes(-1))
	f.Fuzz(func(t *testing.T, log []byte) {
		r, err := NewReader(bytes.NewReader(log))
		if err != nil {
			return
		}
		entries := 0
		for {
			rec, err := r.Next()
			if err != nil {
				break
			}
			if entries++; rec.DataOff > int64(len(log)) || entries > len(log)/512 {
				t.Fatalf("entry %d read past the log's %d bytes (data at %d)", rec.Index, len(log), rec.DataOff)
			}
		}
		r, _ = NewReader(bytes.NewReader(log))
		n, err := Replay(r, &boundedDev{b: make([]byte, 64<<10)}, Options{CheckAt: CheckEvery(2), Check: func(Record) error { return nil }})
		if n > uint64(entries) || err == io.EOF {
			t.Fatalf("replayed %d of %d entries, err %v", n, entries, err)
		}
	})
}
