package targets

import (
	"fmt"
	"log/slog"
)

// mergeBatchBytes bounds one merge step. dm copies a whole run of
// consecutive exceptions at once; gdm cuts it so that the origin range a
// step holds (and the I/O waiting on it) stays small whatever the chunk
// size and the run.
const mergeBatchBytes = 4 << 20

// start runs the merge in a goroutine of its own, unless it runs already.
func (m *snapMerge) start() {
	if m.stop != nil {
		return
	}
	if m.total.Load() == 0 {
		m.total.Store(uint64(m.s.store.Load().remaining()))
	}
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	go m.run(m.stop, m.done)
}

// halt stops the merge and waits for its goroutine: a step in flight ends
// with its commit, so the store is at a commit boundary when halt returns.
func (m *snapMerge) halt() {
	if m.stop == nil {
		return
	}
	close(m.stop)
	<-m.done
	m.stop, m.done = nil, nil
}

// run merges step after step until none is left, stop is closed, or a
// step fails. Each step removes at least one exception, so it ends.
func (m *snapMerge) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		default:
		}
		more, err := m.step()
		if err != nil {
			slog.Error("snapshot-merge: merge failed", "cow", m.s.cow.Path(), "err", err)
			m.failed.Store(true)
			return
		}
		if !more {
			return
		}
		if m.afterStep != nil {
			m.afterStep()
		}
	}
}

// step merges the next run of exceptions: under the origin's range lock
// (which holds back the merging device's I/O to those chunks and every
// origin writer), the other snapshots of the origin get their copies of
// the range first, as from any origin write; then the COW's chunks are
// copied onto the origin, the origin synced, and the merge committed.
// An invalid snapshot merges nothing, as dm's.
func (m *snapMerge) step() (bool, error) {
	st := m.s.store.Load()
	if valid, _ := st.state(); !valid {
		return false, nil
	}
	cs := st.lay.chunk
	old, nw, n, err := st.prepareMerge(int(max(1, mergeBatchBytes/cs)))
	if err != nil || n == 0 {
		return false, err
	}
	off, length := int64(old)*cs, int64(n)*cs
	err = m.s.entry.write(m.s.origin, off, length, func() error {
		if m.inStep != nil {
			m.inStep()
		}
		if err := copyBack(m.s.origin, st, off, int64(nw)*cs, length); err != nil {
			return err
		}
		if err := m.s.origin.Sync(); err != nil {
			return fmt.Errorf("targets: snapshot-merge: syncing the origin: %w", err)
		}
		return st.commitMerge(old, n)
	})
	return true, err
}

// copyBack copies length bytes at src of the COW device to dst of the
// origin, stopping at the origin's end (its last chunk may be partial, as
// dm's copy is cut there): a step's run of consecutive chunks with one
// read and one write, in parts of at most maxCopyBytes.
func copyBack(origin *Dev, st *cowStore, dst, src, length int64) error {
	length = min(length, max(origin.Size()-dst, 0))
	buf := make([]byte, min(length, max(maxCopyBytes/st.lay.chunk, 1)*st.lay.chunk))
	for done := int64(0); done < length; {
		k := min(int64(len(buf)), length-done)
		if err := st.dev.ReadAt(buf[:k], src+done); err != nil {
			return err
		}
		if err := origin.WriteAt(buf[:k], dst+done); err != nil {
			return err
		}
		done += k
	}
	return nil
}
