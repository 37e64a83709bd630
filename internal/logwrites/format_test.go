package logwrites

import (
	"bytes"
	"errors"
	"testing"
)

// le writes v as n little-endian bytes, by hand: the expected layouts
// below do not use the code under test's encoding.
func le(v uint64, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

// The super block, byte by byte as the format describes it.
func TestSuperLayout(t *testing.T) {
	want := make([]byte, 512)
	copy(want[0:], []byte{0x72, 0x68, 0x73, 0x77, 0x66, 0x73, 0x6a, 0}) // magic, "rhswfsj" little-endian
	copy(want[8:], le(1, 8))
	copy(want[16:], le(0x0102030405, 8))
	copy(want[24:], le(512, 4))
	got := AppendSuper(nil, Super{NrEntries: 0x0102030405, SectorSize: 512})
	if !bytes.Equal(got, want) {
		t.Fatalf("super:\n got %x\nwant %x", got[:32], want[:32])
	}
	s, err := DecodeSuper(got)
	if err != nil || s != (Super{NrEntries: 0x0102030405, SectorSize: 512}) {
		t.Fatalf("decode: %+v, %v", s, err)
	}
	if n := len(AppendSuper(nil, Super{SectorSize: 4096})); n != 4096 {
		t.Fatalf("a 4096-byte-sector super is %d bytes", n)
	}
}

func TestSuperRefused(t *testing.T) {
	good := AppendSuper(nil, Super{NrEntries: 1, SectorSize: 512})
	for _, c := range []struct {
		name string
		edit func(b []byte)
		err  error
	}{
		{"magic", func(b []byte) { b[0] ^= 1 }, ErrMagic},
		{"version", func(b []byte) { b[8] = 2 }, ErrVersion},
		{"sector size", func(b []byte) { copy(b[24:], le(513, 4)) }, ErrSectorSize},
		{"zero sector size", func(b []byte) { copy(b[24:], le(0, 4)) }, ErrSectorSize},
		{"short", nil, ErrShort},
	} {
		b := bytes.Clone(good)
		if c.edit != nil {
			c.edit(b)
		} else {
			b = b[:SuperLen-1]
		}
		if _, err := DecodeSuper(b); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
}

// An entry: sector, count, flags, data length, the mark's name, zeros.
func TestEntryLayout(t *testing.T) {
	want := make([]byte, 512)
	copy(want[0:], le(7, 8))
	copy(want[8:], le(0, 8))
	copy(want[16:], le(8, 8)) // MARK
	copy(want[24:], le(4, 8))
	copy(want[32:], "snap")
	got := AppendEntry(nil, Entry{Sector: 7, Flags: FlagMark}, "snap", 512)
	if !bytes.Equal(got, want) {
		t.Fatalf("mark entry:\n got %x\nwant %x", got[:40], want[:40])
	}
	e, mark, err := DecodeEntry(got)
	if err != nil || mark != "snap" || e != (Entry{Sector: 7, Flags: FlagMark, DataLen: 4}) {
		t.Fatalf("decode: %+v %q %v", e, mark, err)
	}
	w := AppendEntry(nil, Entry{Sector: 1 << 40, NrSectors: 3, Flags: FlagFUA}, "", 512)
	if !bytes.Equal(w[:32], append(append(append(le(1<<40, 8), le(3, 8)...), le(2, 8)...), le(0, 8)...)) || len(w) != 512 {
		t.Fatalf("write entry: %x", w[:32])
	}
	if e, mark, _ := DecodeEntry(w); mark != "" || e.NrSectors != 3 || !e.HasData() || e.LogSectors() != 4 {
		t.Fatalf("write entry decodes to %+v %q", e, mark)
	}
	d := Entry{NrSectors: 9, Flags: FlagDiscard}
	if d.HasData() || d.LogSectors() != 1 {
		t.Fatal("a discard carries no data")
	}
}

func TestFlagString(t *testing.T) {
	for flags, want := range map[uint64]string{0: "NONE", 1: "FLUSH", 3: "FLUSH|FUA", 4: "DISCARD", 8: "MARK", 16: "METADATA", 1 << 7: "UNKNOWN.128"} {
		if got := FlagString(flags); got != want {
			t.Errorf("FlagString(%d) = %q, want %q", flags, got, want)
		}
	}
}
