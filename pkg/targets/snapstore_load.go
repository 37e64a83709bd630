package targets

import (
	"fmt"
	"log/slog"
)

// Loading a persistent store from its COW device (the kernel's format,
// snapstore_format.go), or writing a new one; a transient store starts
// empty.

// openCowStore builds the store of a snapshot line: a transient one empty,
// a persistent one loaded from dev (or made new on a zeroed header).
// chunkSectors 0 asks a persistent store for the header's or the default.
func openCowStore(dev *Dev, persistent bool, chunkSectors uint64) (*cowStore, error) {
	s := &cowStore{dev: dev, persistent: persistent, table: map[uint64]uint64{}, valid: true}
	if !persistent {
		s.lay = newSnapLayout(int64(chunkSectors) * SectorSize)
		return s, nil
	}
	if err := s.load(chunkSectors); err != nil {
		return nil, fmt.Errorf("targets: snapshot store %s: %w", dev.Path(), err)
	}
	return s, nil
}

// load reads the header, then the areas; a zero magic is a new store.
func (s *cowStore) load(chunkSectors uint64) error {
	// The header is read as one logical block of the device: a sector,
	// or 4 KiB of an export that refuses anything smaller.
	bs := s.dev.LogicalBlockSize()
	if s.dev.Size() < bs {
		return fmt.Errorf("%w: no room for a header", ErrDeviceTooSmall)
	}
	b := make([]byte, bs)
	if err := s.dev.ReadAt(b, 0); err != nil {
		return err
	}
	h := decodeSnapHeader(b)
	switch {
	case h.magic == 0:
		return s.create(chunkSectors)
	case h.magic != snapMagic:
		return fmt.Errorf("%w: magic %#x", ErrSnapCorrupt, h.magic)
	case h.version != snapDiskVersion:
		return fmt.Errorf("%w: %d", ErrSnapVersion, h.version)
	}
	if err := validChunkSectors(uint64(h.chunkSectors)); err != nil {
		return fmt.Errorf("%w: header: %w", ErrSnapCorrupt, err)
	}
	if chunkSectors != 0 && chunkSectors != uint64(h.chunkSectors) {
		slog.Warn("snapshot: the COW device's chunk size overrides the table's",
			"cow", s.dev.Path(), "device", h.chunkSectors, "table", chunkSectors)
	}
	s.lay = newSnapLayout(int64(h.chunkSectors) * SectorSize)
	if h.valid == 0 {
		s.valid = false
		return nil
	}
	// A header whose chunks leave no room for metadata area 0 is corrupt,
	// or its device was cut short: dm fails to read the area and refuses
	// the table. Loaded, it would read as valid with more sectors
	// allocated than the device has.
	if s.dev.Size() < 2*s.lay.chunk {
		return fmt.Errorf("%w: header's chunk size %d sectors: %d bytes hold no header and metadata area of that size: %w",
			ErrSnapCorrupt, h.chunkSectors, s.dev.Size(), ErrDeviceTooSmall)
	}
	return s.readAreas()
}

// create writes a new store: area 0 zeroed first, then the header, so that
// a store cut short in between still reads as new.
func (s *cowStore) create(chunkSectors uint64) error {
	if chunkSectors == 0 {
		chunkSectors = snapDefaultChunk
	}
	s.lay = newSnapLayout(int64(chunkSectors) * SectorSize)
	if s.dev.Size() < 2*s.lay.chunk {
		return fmt.Errorf("%w: %d bytes hold no header and metadata area of %d-byte chunks",
			ErrDeviceTooSmall, s.dev.Size(), s.lay.chunk)
	}
	s.area = make([]byte, s.lay.chunk)
	if err := s.dev.WriteAt(s.area, s.chunkOff(s.lay.areaChunk(0))); err != nil {
		return err
	}
	h := snapHeader{magic: snapMagic, valid: 1, version: snapDiskVersion, chunkSectors: uint32(chunkSectors)}
	if err := s.dev.WriteAt(h.encode(s.lay.chunk), 0); err != nil {
		return err
	}
	s.nextFree = snapHeaderChunks + 1
	return s.dev.Sync()
}

// readAreas loads every pair, area after area, up to the first zero new
// chunk, and leaves the store ready to append after it. One area's buffer
// serves them all, made only once area 0 is known to fit on the device:
// its size is the header's chunk size, up to 2 GiB whatever the device's.
// An area to read that lies past the device's end (the one after a full
// area, on a device with no room for it) refuses the store, as dm fails
// to read it; dm never leaves one so, as its commit that fills such a
// last area fails to zero the next one and invalidates the snapshot
// (zeroArea).
func (s *cowStore) readAreas() error {
	s.nextFree = snapHeaderChunks + 1
	var buf []byte
	for k := uint64(0); ; k++ {
		loc := s.lay.areaChunk(k)
		if int64(loc+1)*s.lay.chunk > s.dev.Size() {
			return fmt.Errorf("%w: no room for metadata area %d (chunk %d)", ErrDeviceTooSmall, k, loc)
		}
		if buf == nil {
			buf = make([]byte, s.lay.chunk)
		}
		s.areaIdx.Store(k)
		s.area, s.committed = buf, 0
		if err := s.dev.ReadAt(buf, s.chunkOff(loc)); err != nil {
			return err
		}
		for i := 0; i < int(s.lay.perArea); i++ {
			old, nw := getPair(buf, i)
			if nw == 0 {
				s.committed = i
				s.nextFree = s.lay.skipMetadata(s.nextFree)
				return nil
			}
			if nw >= uint64(s.dev.Size()/s.lay.chunk) {
				return fmt.Errorf("%w: area %d maps chunk %d beyond the device", ErrSnapCorrupt, k, nw)
			}
			s.table[old] = nw
			s.nextFree = max(s.nextFree, nw+1)
		}
	}
}
