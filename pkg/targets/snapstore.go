package targets

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
)

// cowStore is a snapshot's exception store: which origin chunks have been
// copied to which chunks of the COW device. Persistent stores (P, PO) keep
// the mapping on the COW device in the kernel's format (snapstore_format.go)
// and commit new exceptions there (a request's all at once), synced, before
// the I/O they cover is answered: so a FLUSH or FUA after it finds the mapping durable, and a
// process killed at any point leaves a store that loads (the unsynced tail
// of an area is at worst pairs no write was acknowledged for). Transient
// stores (N) keep it in memory only.
type cowStore struct {
	dev        *Dev
	persistent bool
	lay        snapLayout // immutable after load

	mu         sync.RWMutex // guards table, nextFree, valid, overflowed
	table      map[uint64]uint64
	nextFree   uint64 // the next chunk to allocate
	valid      bool
	overflowed bool

	// event is raised when the snapshot turns invalid, as dm raises its
	// table's event (the owning table's DevSet RaiseEvent); set before
	// the store serves I/O.
	event func()

	commitMu  sync.Mutex // serializes metadata writes; guards area, committed, and changes of areaIdx
	area      []byte     // the current metadata area as on disk after the next write
	committed int        // pairs in area
	// areaIdx is the current area. usage reads it without commitMu, which
	// a commit holds across writes and syncs of the COW device, so that a
	// status never waits for them.
	areaIdx atomic.Uint64
}

// snapPair is one exception: origin chunk old lives in COW chunk new.
type snapPair struct{ old, new uint64 }

func (s *cowStore) chunkOff(c uint64) int64 { return int64(c) * s.lay.chunk }

// lookup finds the COW chunk of origin chunk old.
func (s *cowStore) lookup(old uint64) (uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok := s.table[old]
	return n, ok
}

// unmapped is the chunks of [first, last] that have no exception, looked
// up under one read lock: an origin write over chunks that are all mapped
// (the common case once a snapshot is old) costs one lookup per chunk.
func (s *cowStore) unmapped(first, last uint64) []uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var olds []uint64
	for c := first; c <= last; c++ {
		if _, ok := s.table[c]; !ok {
			olds = append(olds, c)
		}
	}
	return olds
}

// state is the snapshot's condition for status and I/O: valid, overflowed.
func (s *cowStore) state() (valid, overflowed bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.valid, s.overflowed
}

// prepareRun pairs origin chunks old(0) .. old(n-1) with new COW chunks,
// stepping over metadata areas, under one hold of the lock, as many as
// there is room for (then errCowFull): a request's chunks get consecutive
// COW chunks (metadata areas aside) even while other writes allocate at
// once, so their data is one write, and a later read of them one call
// (snapshot_gather.go), where chunks taken one lock at a time could
// alternate with another writer's.
func (s *cowStore) prepareRun(n int, old func(i int) uint64) ([]snapPair, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pairs := make([]snapPair, 0, n)
	for i := range n {
		nw, err := s.prepareLocked()
		if err != nil {
			return pairs, err
		}
		pairs = append(pairs, snapPair{old: old(i), new: nw})
	}
	return pairs, nil
}

// prepareLocked allocates one COW chunk (errCowFull when the device has
// none left); s.mu held.
func (s *cowStore) prepareLocked() (uint64, error) {
	if !s.valid {
		return 0, ErrSnapInvalid
	}
	if s.dev.Size() < int64(s.nextFree+1)*s.lay.chunk {
		return 0, errCowFull
	}
	n := s.nextFree
	s.nextFree++
	if s.persistent {
		s.nextFree = s.lay.skipMetadata(s.nextFree)
	}
	return n, nil
}

// commit makes pairs durable (persistent stores), then visible to lookup.
// A metadata write that fails invalidates the snapshot, as dm does.
func (s *cowStore) commit(pairs []snapPair) error {
	if s.persistent {
		if err := s.writePairs(pairs); err != nil {
			s.invalidate()
			return fmt.Errorf("targets: snapshot %s: commit: %w: %w", s.dev.Path(), err, syscall.EIO)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pairs {
		s.table[p.old] = p.new
	}
	return nil
}

// writePairs appends pairs to the current area and writes it, synced. An
// area that fills is written with its successor zeroed (and synced) first,
// so that a loader reading on past a full area finds the end there.
func (s *cowStore) writePairs(pairs []snapPair) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.area == nil {
		return ErrSnapInvalid // handed over (handOver)
	}
	// The copied data first: a mapping must never be durable before the
	// chunk it points to (dm's commit is a preflush write for this).
	if err := s.dev.Sync(); err != nil {
		return err
	}
	dirty := false
	for _, p := range pairs {
		putPair(s.area, s.committed, p.old, p.new)
		s.committed++
		dirty = true
		if s.committed < int(s.lay.perArea) {
			continue
		}
		if err := s.zeroArea(s.areaIdx.Load() + 1); err != nil {
			return err
		}
		if err := s.writeArea(); err != nil {
			return err
		}
		s.areaIdx.Add(1)
		s.committed = 0
		s.area = make([]byte, s.lay.chunk)
		dirty = false
	}
	if !dirty {
		return nil
	}
	return s.writeArea()
}

// writeArea writes the current area and syncs the COW device; commitMu held.
func (s *cowStore) writeArea() error {
	if err := s.dev.WriteAt(s.area, s.chunkOff(s.lay.areaChunk(s.areaIdx.Load()))); err != nil {
		return err
	}
	return s.dev.Sync()
}

// zeroArea writes area k as zeros, synced. An area past the device's end
// fails, as dm's write of it does (beyond the end of the device): the last
// area of a COW device that has no room for another fails its commit when
// it fills, and the snapshot is invalidated, as in dm.
func (s *cowStore) zeroArea(k uint64) error {
	off := s.chunkOff(s.lay.areaChunk(k))
	if off+s.lay.chunk > s.dev.Size() {
		return fmt.Errorf("%w: metadata area %d (chunk %d) lies past the COW device's end",
			ErrDeviceTooSmall, k, s.lay.areaChunk(k))
	}
	if err := s.dev.WriteAt(make([]byte, s.lay.chunk), off); err != nil {
		return err
	}
	return s.dev.Sync()
}

// invalidate drops the snapshot: no more I/O, and a persistent store says
// so in its header, so that it loads invalid too.
func (s *cowStore) invalidate() {
	s.mu.Lock()
	was := s.valid
	s.valid = false
	s.mu.Unlock()
	if was && s.event != nil {
		s.event()
	}
	if !was || !s.persistent {
		return
	}
	h := snapHeader{magic: snapMagic, valid: 0, version: snapDiskVersion, chunkSectors: uint32(s.lay.chunk / SectorSize)}
	err := s.dev.WriteAt(h.encode(s.lay.chunk), 0)
	if err == nil {
		err = s.dev.Sync()
	}
	if err != nil {
		slog.Warn("snapshot: marking the store invalid failed", "cow", s.dev.Path(), "err", err)
	}
}

// setOverflow marks a PO snapshot overflowed: writes to it fail, the
// origin's copies and reads go on.
func (s *cowStore) setOverflow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.overflowed = true
}

// usage is dm's: sectors allocated (header and areas included), the COW
// device's sectors, and the metadata's sectors.
func (s *cowStore) usage() (allocated, total, metadata uint64) {
	cs := uint64(s.lay.chunk / SectorSize)
	allocated, total = s.space()
	if s.persistent {
		metadata = (s.areaIdx.Load() + 1 + snapHeaderChunks) * cs
	}
	return allocated, total, metadata
}

// space is usage without the metadata's sectors, and so without waiting
// for commitMu, which a commit holds across writes and syncs of the COW
// device: what a metrics scrape reads.
func (s *cowStore) space() (allocated, total uint64) {
	s.mu.RLock()
	allocated = s.nextFree * uint64(s.lay.chunk/SectorSize)
	s.mu.RUnlock()
	return allocated, uint64(s.dev.Size() / SectorSize)
}

// handOver moves the store's exceptions and state to a new store over dev,
// for the snapshot of a new table that takes over from the old one's, as
// dm's handover swaps the two snapshots' stores: nothing is read or
// copied, however many exceptions there are (it runs under the origin's
// lock). This store is left empty and invalid in memory only (the header
// on the device is the new store's now): a late commit or invalidate of
// the old snapshot fails without writing the device (writePairs).
func (s *cowStore) handOver(dev *Dev) *cowStore {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &cowStore{dev: dev, persistent: s.persistent, lay: s.lay, table: s.table,
		nextFree: s.nextFree, valid: s.valid, overflowed: s.overflowed,
		area: s.area, committed: s.committed}
	n.areaIdx.Store(s.areaIdx.Load())
	s.table, s.valid = map[uint64]uint64{}, false
	s.area, s.committed = nil, 0
	s.areaIdx.Store(0)
	return n
}
