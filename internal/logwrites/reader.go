package logwrites

import (
	"errors"
	"fmt"
	"io"
)

// Reader walks a log's entries in order. It reads as many entries as the
// super block counts: dm rewrites the count only after a FUA write or a
// mark, so entries logged after the last of those are not seen until the
// log's next rewrite (at the latest the end mark its destructor logs).
type Reader struct {
	r     io.ReaderAt
	super Super
	next  uint64 // index of the next entry
	pos   int64  // byte offset of the next entry
	buf   []byte // one sector
}

// Record is one entry as read: its index from 0, its header, the mark's
// name, and where its data starts in the log.
type Record struct {
	Index   uint64
	Entry   Entry
	Mark    string
	DataOff int64
}

// NewReader reads the super block of the log in r.
func NewReader(r io.ReaderAt) (*Reader, error) {
	head := make([]byte, SuperLen)
	if _, err := r.ReadAt(head, 0); err != nil {
		return nil, fmt.Errorf("logwrites: reading the super block: %w", err)
	}
	s, err := DecodeSuper(head)
	if err != nil {
		return nil, err
	}
	return &Reader{r: r, super: s, pos: int64(s.SectorSize), buf: make([]byte, s.SectorSize)}, nil
}

// Super is the log's super block.
func (l *Reader) Super() Super { return l.super }

// Next reads the next entry; io.EOF after the last one the super counts.
func (l *Reader) Next() (Record, error) {
	if l.next >= l.super.NrEntries {
		return Record{}, io.EOF
	}
	if _, err := l.r.ReadAt(l.buf, l.pos); err != nil {
		if errors.Is(err, io.EOF) {
			err = ErrShort
		}
		return Record{}, fmt.Errorf("logwrites: entry %d at byte %d: %w", l.next, l.pos, err)
	}
	e, mark, err := DecodeEntry(l.buf)
	if err != nil {
		return Record{}, fmt.Errorf("logwrites: entry %d at byte %d: %w", l.next, l.pos, err)
	}
	size := int64(l.super.SectorSize)
	if lim := uint64(1<<62) / uint64(size); e.NrSectors >= lim || e.Sector >= lim-e.NrSectors {
		return Record{}, fmt.Errorf("logwrites: entry %d: %w: sector %d, %d sectors", l.next, ErrRange, e.Sector, e.NrSectors)
	}
	rec := Record{Index: l.next, Entry: e, Mark: mark, DataOff: l.pos + size}
	l.pos += int64(e.LogSectors()) * size
	l.next++
	return rec, nil
}

// Data reads the data of rec (a write's sectors) into p, which must be
// rec's length in bytes or a piece of it starting at byte off.
func (l *Reader) Data(rec Record, p []byte, off int64) error {
	if _, err := l.r.ReadAt(p, rec.DataOff+off); err != nil {
		if errors.Is(err, io.EOF) {
			err = ErrShort
		}
		return fmt.Errorf("logwrites: data of entry %d: %w", rec.Index, err)
	}
	return nil
}

// Bytes is the byte offset and length on the logged device of rec's range.
func (l *Reader) Bytes(rec Record) (off, n int64) {
	size := int64(l.super.SectorSize)
	return int64(rec.Entry.Sector) * size, int64(rec.Entry.NrSectors) * size
}
