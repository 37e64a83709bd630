package targets

import (
	"context"
	"fmt"
	"sync/atomic"
)

// snapMerge is dm's snapshot-merge target: `snapshot-merge <origin> <COW
// device> <P|PO> <chunk size> [<#feature args> ...]`, the arguments of a
// snapshot over a persistent store. It takes the snapshot's exceptions
// over (at its Resume, as a reload of a snapshot over the same COW does)
// and copies them back to the origin in the background, last exception
// first (snapmerge_run.go). Meanwhile it serves the snapshot's view, which
// becomes the origin's: a chunk not merged yet comes from the COW, any
// other from the origin (snapmerge_io.go). When the merge is done the
// device maps the origin one to one and the status reads allocated ==
// metadata, as dm's.
type snapMerge struct {
	Base
	s *snapshot

	// The background merge; started by Resume and PreSuspendUndo, stopped
	// by PreSuspend and Destroy. Those hooks are never concurrent, so the
	// fields need no lock.
	stop, done chan struct{}

	// failed is dm's merge_failed: an I/O error stopped the merge. It stays
	// set for the table's life, as dm's, though the next resume merges
	// again (start), as dm's does.
	failed atomic.Bool
	total  atomic.Uint64 // exceptions when the merge first started

	// afterStep, tests only: a merge step committed (run's goroutine).
	afterStep func()
	// inStep, tests only: a step holds its range and is about to copy.
	inStep func()
}

var (
	_ Target    = (*snapMerge)(nil)
	_ Resumer   = (*snapMerge)(nil)
	_ Suspender = (*snapMerge)(nil)
	_ Destroyer = (*snapMerge)(nil)
	_ Discarder = (*snapMerge)(nil)
)

func init() {
	register(&Type{Name: "snapshot-merge", Version: [3]uint32{1, 5, 0}, Check: checkSnapMerge, New: newSnapMerge, NoLiveSwap: true,
		Syntax:  "<origin> <COW device> <P|PO> <chunk size> [<#feature args> [discard_zeroes_cow] [discard_passdown_origin]]",
		Summary: "merges the snapshot kept on <COW device> back into <origin> in the background, serving the snapshot's view meanwhile"})
}

// checkSnapMerge is a snapshot line's check, with a persistent store only:
// a transient one has nothing on disk to merge from (dm refuses it too).
func checkSnapMerge(args []string, sectors uint64) ([]string, error) {
	out, err := checkSnapshot(args, sectors)
	if err != nil {
		return nil, err
	}
	if out[2] == "N" {
		return nil, fmt.Errorf("%w: snapshot-merge needs a persistent store (P or PO), got %q", ErrSnapStoreType, args[2])
	}
	return out, nil
}

func newSnapMerge(args []string, sectors uint64, devs *DevSet) (Target, error) {
	if k, _ := snapStoreKind(args[2]); k == "N" { // checked; a New without Check must not merge from memory
		return nil, ErrSnapStoreType
	}
	t, err := newSnapshot(args, sectors, devs)
	if err != nil {
		return nil, err
	}
	s := t.(*snapshot)
	s.merging = true
	return &snapMerge{s: s}, nil
}

// PreResume is the snapshot's: the store read again if it may be out of
// date, a failed read refusing the resume.
func (m *snapMerge) PreResume(ctx context.Context) error { return m.s.PreResume(ctx) }

// Resume takes the exceptions over (from a snapshot of another table over
// the same COW, or from the device), then starts the merge.
func (m *snapMerge) Resume(ctx context.Context) {
	m.s.Resume(ctx)
	m.start()
}

// PreSuspend stops the merge, as dm's presuspend does: the step in flight
// finishes (its commit included), no new one starts.
func (m *snapMerge) PreSuspend(context.Context) { m.halt() }

// PreSuspendUndo goes on merging: the table serves again.
func (m *snapMerge) PreSuspendUndo(context.Context) { m.start() }

// PostSuspend has nothing left to do: PreSuspend stopped the merge.
func (m *snapMerge) PostSuspend(context.Context) {}

// Destroy stops the merge (if a table that never suspended is destroyed)
// and leaves the origin.
func (m *snapMerge) Destroy() error {
	m.halt()
	return m.s.Destroy()
}

// Status is the snapshot's, with dm's "Merge failed" after an error
// stopped the merge; an invalid store says Invalid first, as dm's.
func (m *snapMerge) Status(typ StatusType) string {
	if typ == StatusInfo && m.failed.Load() {
		if valid, _ := m.s.store.Load().state(); valid {
			return "Merge failed"
		}
	}
	return m.s.Status(typ)
}

// SnapshotStats adds the merge's progress to the snapshot's numbers.
func (m *snapMerge) SnapshotStats() SnapshotStats {
	st := m.s.SnapshotStats()
	st.Merging = true
	st.MergeTotal = m.total.Load()
	st.MergeRemaining = uint64(m.s.store.Load().remaining())
	return st
}
