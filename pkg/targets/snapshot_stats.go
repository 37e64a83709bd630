package targets

// SnapshotStats is a snapshot's numbers for metrics, read at scrape time.
type SnapshotStats struct {
	// ChunksCopied and BytesCopied count the COW faults: origin chunks
	// copied to the COW device before an origin write or a partial
	// snapshot write changed them.
	ChunksCopied, BytesCopied uint64
	// CowUsedBytes and CowTotalBytes are the status's allocated and total
	// sectors in bytes (header and metadata areas included, as dm's).
	CowUsedBytes, CowTotalBytes uint64
	// Merging is a snapshot-merge; MergeRemaining of MergeTotal chunks
	// are still to go back to the origin.
	Merging                    bool
	MergeRemaining, MergeTotal uint64
}

// SnapshotStatser is a target with snapshot numbers (snapshot,
// snapshot-merge); the daemon's metrics find it with a type assertion, as
// they find FaultCounter.
type SnapshotStatser interface {
	SnapshotStats() SnapshotStats
}

var (
	_ SnapshotStatser = (*snapshot)(nil)
	_ SnapshotStatser = (*snapMerge)(nil)
)

// SnapshotStats reads the counters and the store's space in use, never
// waiting for a metadata commit (see cowStore.space).
func (s *snapshot) SnapshotStats() SnapshotStats {
	st := s.store.Load()
	n := s.copied.Load()
	used, total := st.space()
	return SnapshotStats{ChunksCopied: n, BytesCopied: n * uint64(st.lay.chunk),
		CowUsedBytes: used * SectorSize, CowTotalBytes: total * SectorSize}
}
