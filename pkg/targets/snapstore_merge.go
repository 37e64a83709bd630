package targets

import (
	"fmt"
	"slices"
)

// The exception store's side of a merge, in dm's order: the merge takes the
// last committed exceptions first (the tail of the current metadata area,
// then the areas before it), and drops them from the metadata only once
// their data is back on the origin and synced there. A crash between the
// two leaves the pairs in place, and the next merge copies them again: the
// copy is idempotent, as a merging snapshot never writes new exceptions.

// prepareMerge finds the next run to merge: the last committed pair and the
// pairs before it in the same area whose old and new chunks both step down
// by one, at most limit of them. It returns the run's first old and new
// chunk and its length; n 0 means every exception has been merged. An
// emptied area is left for the one before it, read back from the device.
func (s *cowStore) prepareMerge(limit int) (old, nw uint64, n int, err error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.committed == 0 {
		k := s.areaIdx.Load()
		if k == 0 {
			return 0, 0, 0, nil
		}
		buf := make([]byte, s.lay.chunk)
		if err := s.dev.ReadAt(buf, s.chunkOff(s.lay.areaChunk(k-1))); err != nil {
			return 0, 0, 0, fmt.Errorf("targets: snapshot %s: reading metadata area %d: %w", s.dev.Path(), k-1, err)
		}
		s.areaIdx.Store(k - 1)
		s.area, s.committed = buf, int(s.lay.perArea)
	}
	lastOld, lastNew := getPair(s.area, s.committed-1)
	n = 1
	for n < s.committed && n < limit {
		o, w := getPair(s.area, s.committed-1-n)
		if o != lastOld-uint64(n) || w != lastNew-uint64(n) {
			break
		}
		n++
	}
	return lastOld + 1 - uint64(n), lastNew + 1 - uint64(n), n, nil
}

// commitMerge drops the last n pairs of the current area on the device
// (written and synced: the caller synced the origin first), then from the
// table: chunks old to old+n-1 read from the origin from now on. The
// allocation count shrinks as dm's does, so that the status reaches
// allocated == metadata when the merge is done. A write that fails puts
// the pairs back in the area kept in memory, so that a merge started again
// (dm starts one at every resume) merges them again: dm leaves them
// cleared there, and its next merge copies the header chunk onto origin
// chunk 0.
func (s *cowStore) commitMerge(old uint64, n int) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	tail := s.area[(s.committed-n)*snapPairBytes : s.committed*snapPairBytes]
	kept := slices.Clone(tail)
	clear(tail)
	if err := s.writeArea(); err != nil {
		copy(tail, kept)
		return fmt.Errorf("targets: snapshot %s: committing a merge: %w", s.dev.Path(), err)
	}
	s.committed -= n
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range uint64(n) {
		delete(s.table, old+c)
	}
	s.nextFree = s.lay.areaChunk(s.areaIdx.Load()) + uint64(s.committed) + 1
	return nil
}

// remaining is how many exceptions are left to merge (the table's size).
func (s *cowStore) remaining() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.table)
}
