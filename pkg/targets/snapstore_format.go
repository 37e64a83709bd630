package targets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
)

// The persistent exception store's on-disk format, the kernel's
// (dm-snap-persistent.c), so that a COW device moves between dm and gdm:
//
//	chunk 0       header: le32 magic "SnAp", le32 valid, le32 version 1,
//	              le32 chunk size in sectors; the rest of the chunk zero
//	chunk 1       metadata area 0: chunk/16 pairs {le64 old, le64 new}
//	chunks 2..    the data chunks area 0 maps
//	chunk 1+k*(n+1)  metadata area k (n = pairs per area), and so on
//
// A pair whose new chunk is 0 (the header's, never a data chunk) ends the
// list; an area full of pairs continues in the next one.
const (
	snapMagic        = 0x70416e53
	snapDiskVersion  = 1
	snapHeaderChunks = 1
	snapPairBytes    = 16
	// snapDefaultChunk is the chunk size (sectors) of a new persistent
	// store whose table gave 0, as dm's default.
	snapDefaultChunk = 32
)

// Errors of the exception store. Test with errors.Is.
var (
	// ErrSnapCorrupt is a COW device whose header is neither empty nor a
	// snapshot's.
	ErrSnapCorrupt = errors.New("invalid or corrupt snapshot")
	// ErrSnapVersion is a header of a version gdm does not read.
	ErrSnapVersion = errors.New("unsupported snapshot disk version")
	// ErrSnapInvalid answers I/O to an invalidated snapshot (a full COW).
	ErrSnapInvalid = fmt.Errorf("targets: snapshot is invalid: %w", syscall.EIO)
	// ErrSnapOverflow answers a write to an overflowed PO snapshot.
	ErrSnapOverflow = fmt.Errorf("targets: snapshot overflowed: %w", syscall.EIO)
	// errCowFull is an allocation on a COW device with no chunk left.
	errCowFull = errors.New("COW device full")
)

// snapHeader is chunk 0's fields.
type snapHeader struct {
	magic, valid, version, chunkSectors uint32
}

func (h snapHeader) encode(chunkBytes int64) []byte {
	b := make([]byte, chunkBytes)
	binary.LittleEndian.PutUint32(b[0:], h.magic)
	binary.LittleEndian.PutUint32(b[4:], h.valid)
	binary.LittleEndian.PutUint32(b[8:], h.version)
	binary.LittleEndian.PutUint32(b[12:], h.chunkSectors)
	return b
}

func decodeSnapHeader(b []byte) snapHeader {
	return snapHeader{
		magic:        binary.LittleEndian.Uint32(b[0:]),
		valid:        binary.LittleEndian.Uint32(b[4:]),
		version:      binary.LittleEndian.Uint32(b[8:]),
		chunkSectors: binary.LittleEndian.Uint32(b[12:]),
	}
}

// snapLayout is where areas and data chunks lie for one chunk size.
type snapLayout struct {
	chunk   int64  // bytes
	perArea uint64 // pairs in one metadata area
}

func newSnapLayout(chunkBytes int64) snapLayout {
	return snapLayout{chunk: chunkBytes, perArea: uint64(chunkBytes) / snapPairBytes}
}

// areaChunk is the chunk that holds metadata area k.
func (l snapLayout) areaChunk(k uint64) uint64 {
	return snapHeaderChunks + k*(l.perArea+1)
}

// skipMetadata moves a free chunk number off a metadata area's chunk.
func (l snapLayout) skipMetadata(next uint64) uint64 {
	if next%(l.perArea+1) == snapHeaderChunks {
		next++
	}
	return next
}

func putPair(area []byte, i int, old, new uint64) {
	binary.LittleEndian.PutUint64(area[i*snapPairBytes:], old)
	binary.LittleEndian.PutUint64(area[i*snapPairBytes+8:], new)
}

func getPair(area []byte, i int) (old, new uint64) {
	return binary.LittleEndian.Uint64(area[i*snapPairBytes:]),
		binary.LittleEndian.Uint64(area[i*snapPairBytes+8:])
}

// validChunkSectors checks a chunk size as dm does: a power of two that
// fits an int once in bytes.
func validChunkSectors(n uint64) error {
	if n == 0 || n&(n-1) != 0 {
		return fmt.Errorf("%w: chunk size %d is not a power of 2", ErrChunk, n)
	}
	if n > (1<<31-1)/SectorSize {
		return fmt.Errorf("%w: chunk size %d too high", ErrOverflow, n)
	}
	return nil
}
