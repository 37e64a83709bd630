// Package logwrites is the on-disk format of dm-log-writes' log, shared by
// gdm's log-writes target (which writes it) and `gdm replay` (which reads
// it): a super block in the log's first sector, then one entry sector per
// logged write, flush, FUA write, discard or mark, each followed by the
// data it wrote. The same layout is written by the kernel's dm-log-writes
// and by qemu's blklogwrites driver, and read by replay-log (xfstests'
// src/log-writes), so a log from any of them replays with any of them.
//
// Every field is little-endian. Sector numbers and counts in entries are in
// units of the super block's sector size; the layout below is all gdm
// relies on, written from the format's description, not from any code.
//
//	super (sector 0):  magic u64 | version u64 | nr_entries u64 | sectorsize u32 | zeros
//	entry:             sector u64 | nr_sectors u64 | flags u64 | data_len u64 | mark text | zeros
//	data:              nr_sectors sectors, unless the entry is a discard
package logwrites

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Entry flags: what a logged request was.
const (
	FlagFlush    uint64 = 1 << 0 // a cache flush (REQ_PREFLUSH)
	FlagFUA      uint64 = 1 << 1 // a write durable on completion
	FlagDiscard  uint64 = 1 << 2 // a discard: sectors but no data in the log
	FlagMark     uint64 = 1 << 3 // a user's mark; its name follows the entry header
	FlagMetadata uint64 = 1 << 4 // a metadata write (REQ_META); gdm never sets it
)

const (
	// Magic identifies a log: "jsfwshr" read as a little-endian number.
	Magic uint64 = 0x6a736677736872
	// Version is the only version of the format.
	Version uint64 = 1
	// SuperLen is the bytes of the super block that carry fields.
	SuperLen = 28
	// EntryLen is the bytes of an entry header; a mark's name follows it.
	EntryLen = 32
)

// Errors of decoding.
var (
	ErrMagic      = errors.New("logwrites: not a write log (bad magic)")
	ErrVersion    = errors.New("logwrites: unsupported log version")
	ErrSectorSize = errors.New("logwrites: bad sector size")
	ErrShort      = errors.New("logwrites: log ends inside an entry")
	ErrRange      = errors.New("logwrites: entry out of any device's range")
	ErrMalformed  = errors.New("logwrites: malformed entry")
)

// Super is the log's first sector.
type Super struct {
	NrEntries  uint64
	SectorSize uint32
}

// Entry is one logged request's header. DataLen is the length of the
// mark's name for a mark; dm leaves it 0 for everything else.
type Entry struct {
	Sector    uint64
	NrSectors uint64
	Flags     uint64
	DataLen   uint64
}

// AppendSuper appends the super block, padded to one sector of s's size.
func AppendSuper(b []byte, s Super) []byte {
	b = binary.LittleEndian.AppendUint64(b, Magic)
	b = binary.LittleEndian.AppendUint64(b, Version)
	b = binary.LittleEndian.AppendUint64(b, s.NrEntries)
	b = binary.LittleEndian.AppendUint32(b, s.SectorSize)
	return append(b, make([]byte, int(s.SectorSize)-SuperLen)...)
}

// DecodeSuper reads a super block from the first SuperLen bytes of b.
func DecodeSuper(b []byte) (Super, error) {
	if len(b) < SuperLen {
		return Super{}, ErrShort
	}
	if binary.LittleEndian.Uint64(b) != Magic {
		return Super{}, ErrMagic
	}
	if v := binary.LittleEndian.Uint64(b[8:]); v != Version {
		return Super{}, fmt.Errorf("%w %d", ErrVersion, v)
	}
	s := Super{NrEntries: binary.LittleEndian.Uint64(b[16:]), SectorSize: binary.LittleEndian.Uint32(b[24:])}
	if s.SectorSize < SectorMin || s.SectorSize&(s.SectorSize-1) != 0 || s.SectorSize > SectorMax {
		return Super{}, fmt.Errorf("%w %d", ErrSectorSize, s.SectorSize)
	}
	return s, nil
}

// The sector sizes a log may have: at least an entry header plus a byte
// of mark, at most what any reader allocates for an entry sector.
const (
	SectorMin = 512
	SectorMax = 1 << 20
)

// AppendEntry appends e's sector: the header, the mark's name (for a
// mark), zeros to the sector's end. mark must be shorter than
// sectorSize-EntryLen; e.DataLen is set from it.
func AppendEntry(b []byte, e Entry, mark string, sectorSize int) []byte {
	if mark != "" {
		e.DataLen = uint64(len(mark))
	}
	b = binary.LittleEndian.AppendUint64(b, e.Sector)
	b = binary.LittleEndian.AppendUint64(b, e.NrSectors)
	b = binary.LittleEndian.AppendUint64(b, e.Flags)
	b = binary.LittleEndian.AppendUint64(b, e.DataLen)
	b = append(b, mark...)
	return append(b, make([]byte, sectorSize-EntryLen-len(mark))...)
}

// DecodeEntry reads an entry sector: its header and, for a mark, the
// mark's name (up to the first NUL, as replay-log compares it). It
// refuses, as replay-log does, what no writer makes: a sector of zeros
// (no flags, no sectors: past the end of what was logged, where the super
// counts more) and a non-mark entry with bytes after its header.
func DecodeEntry(b []byte) (Entry, string, error) {
	if len(b) < EntryLen {
		return Entry{}, "", ErrShort
	}
	e := Entry{
		Sector:    binary.LittleEndian.Uint64(b),
		NrSectors: binary.LittleEndian.Uint64(b[8:]),
		Flags:     binary.LittleEndian.Uint64(b[16:]),
		DataLen:   binary.LittleEndian.Uint64(b[24:]),
	}
	if e.Flags == 0 && e.NrSectors == 0 {
		return e, "", fmt.Errorf("%w: no flags and no sectors", ErrMalformed)
	}
	if e.Flags != FlagMark && len(b) > EntryLen && b[EntryLen] != 0 {
		return e, "", fmt.Errorf("%w: bytes after the header of a %s entry", ErrMalformed, FlagString(e.Flags))
	}
	if e.Flags&FlagMark == 0 {
		return e, "", nil
	}
	text := b[EntryLen:]
	if i := strings.IndexByte(string(text), 0); i >= 0 {
		text = text[:i]
	}
	return e, string(text), nil
}

// HasData says whether the entry's sectors follow it in the log.
func (e Entry) HasData() bool { return e.Flags&FlagDiscard == 0 && e.NrSectors > 0 }

// LogSectors is how many sectors the entry takes in the log, its own
// included.
func (e Entry) LogSectors() uint64 {
	if e.Flags&FlagDiscard != 0 {
		return 1
	}
	return 1 + e.NrSectors
}

// FlagString names the flags as replay-log prints them: "FLUSH|FUA",
// "NONE" for a plain write, unknown bits as UNKNOWN.<n>.
func FlagString(flags uint64) string {
	var names []string
	for _, f := range []struct {
		bit  uint64
		name string
	}{{FlagFlush, "FLUSH"}, {FlagFUA, "FUA"}, {FlagDiscard, "DISCARD"}, {FlagMark, "MARK"}, {FlagMetadata, "METADATA"}} {
		if flags&f.bit != 0 {
			names = append(names, f.name)
			flags &^= f.bit
		}
	}
	if flags != 0 {
		names = append(names, fmt.Sprintf("UNKNOWN.%d", flags))
	}
	if names == nil {
		return "NONE"
	}
	return strings.Join(names, "|")
}
