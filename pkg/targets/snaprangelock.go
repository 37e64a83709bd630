package targets

import "sync"

// rangeLock serializes the users of byte ranges of one origin: an origin
// write that copies old chunks out to snapshots, a snapshot write that
// fills a new exception, and a snapshot read that falls through to the
// origin. The range is in origin bytes, so snapshots with different chunk
// sizes over one origin lock in one space. Shared holders (reads) exclude
// only exclusive ones (writes); that is how a read during a copy sees the
// old data: the origin write that would change it waits for the read.
//
// A shared request also waits for (and a shared tryLock refuses) an
// exclusive one that is waiting for an overlapping range: a steady stream
// of overlapping reads, each taking its range while another still holds
// one, would otherwise keep an origin write waiting for ever. Exclusive
// requests keep no such order among themselves: a snapshot write holds
// the ranges it took while it waits for the next (in ascending order), so
// one waiting behind an older request that in turn waits for a range it
// holds would never go on. A shared request holds no other range while
// it waits, so it can wait behind anything.
//
// Held ranges are a plain list: one entry per I/O in flight on the origin
// and its snapshots, except a snapshot write, which holds one per stretch
// of new chunks until its commit (at most 128 for a 1 MiB request over
// 4 KiB chunks): a few hundred at worst, so a scan still beats a tree.
type rangeLock struct {
	mu   sync.Mutex // guards held, exWaiting, next and wake
	held []heldRange
	// exWaiting are the exclusive lock calls blocked now, by range.
	exWaiting []heldRange
	next      uint64 // the last id handed out
	// waiters counts lock calls blocked now: how a test sees that a
	// writer waits rather than goes ahead.
	waiters int
	// wake is closed and replaced whenever a range is released; waiters
	// block on the channel they saw, then look again.
	wake chan struct{}
}

type heldRange struct {
	lo, hi int64 // [lo, hi) in origin bytes
	shared bool
	id     uint64
}

// rangeToken identifies one held range for unlock.
type rangeToken struct {
	l  *rangeLock
	id uint64
}

// lock waits until [lo, hi) conflicts with no held range, then holds it.
func (l *rangeLock) lock(lo, hi int64, shared bool) rangeToken {
	l.mu.Lock()
	l.next++
	id := l.next
	for {
		if !l.conflictsLocked(lo, hi, shared) {
			l.held = append(l.held, heldRange{lo: lo, hi: hi, shared: shared, id: id})
			l.mu.Unlock()
			return rangeToken{l: l, id: id}
		}
		if l.wake == nil {
			l.wake = make(chan struct{})
		}
		w := l.wake
		l.waiters++
		if !shared {
			l.exWaiting = append(l.exWaiting, heldRange{lo: lo, hi: hi, id: id})
		}
		l.mu.Unlock()
		<-w
		l.mu.Lock()
		l.waiters--
		if !shared {
			l.exWaiting = removeRange(l.exWaiting, id)
		}
	}
}

// tryLock holds [lo, hi) if it conflicts with no held range, and reports
// whether it did; it never waits (an asynchronous read, which must not
// block its caller, takes its range so: snapshot_async.go).
func (l *rangeLock) tryLock(lo, hi int64, shared bool) (rangeToken, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conflictsLocked(lo, hi, shared) {
		return rangeToken{}, false
	}
	l.next++
	l.held = append(l.held, heldRange{lo: lo, hi: hi, shared: shared, id: l.next})
	return rangeToken{l: l, id: l.next}, true
}

// conflictsLocked says whether a new holder of [lo, hi) must wait: a held
// range it cannot share, or, for a shared one, an exclusive request
// waiting for an overlapping range. l.mu held.
func (l *rangeLock) conflictsLocked(lo, hi int64, shared bool) bool {
	for _, h := range l.held {
		if h.lo < hi && lo < h.hi && !(shared && h.shared) {
			return true
		}
	}
	if !shared {
		return false
	}
	for _, w := range l.exWaiting {
		if w.lo < hi && lo < w.hi {
			return true
		}
	}
	return false
}

// removeRange drops the range of id from rs.
func removeRange(rs []heldRange, id uint64) []heldRange {
	for i, r := range rs {
		if r.id == id {
			rs[i] = rs[len(rs)-1]
			return rs[:len(rs)-1]
		}
	}
	return rs
}

// unlock releases the range and wakes every waiter to look again.
func (t rangeToken) unlock() {
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held = removeRange(l.held, t.id)
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
}

// waiting is how many lock calls are blocked.
func (l *rangeLock) waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiters
}
