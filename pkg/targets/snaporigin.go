package targets

import (
	"log/slog"
	"sync"
	"sync/atomic"
)

// The origin registry: every origin device that a snapshot or a
// snapshot-origin target of any table of the daemon names, keyed by its
// Identity, as dm's origin hash is keyed by block device. The origin and
// its snapshots are separate devices with separate tables; this is where
// an origin write finds the snapshots that must get the old data first.
var origins = struct {
	mu sync.Mutex // guards m and every entry's refs
	m  map[Identity]*originEntry
}{m: map[Identity]*originEntry{}}

// originEntry is one origin: its active snapshots and the range lock their
// copies take.
type originEntry struct {
	id   Identity
	refs int // targets holding the entry; guarded by origins.mu

	// mu guards snaps. Origin writes hold it for reading across their
	// copies, so that a snapshot handed over between tables (attach) never
	// sees a copy land in the old table's store after the new one took it.
	mu    sync.RWMutex
	snaps []*snapshot

	// gen counts the snapshots that left snaps (detached or handed over);
	// changed under mu, read without it. A snapshot's store read when gen
	// was g is up to date while gen is still g, or while a snapshot over
	// its COW is attached (its store is the one taken over): nothing else
	// writes a COW device's metadata (snapshot.loadGen).
	gen atomic.Uint64

	locks rangeLock
}

// acquireOrigin returns the entry of an origin, made on first use; the
// caller releases it once, at its destroy.
func acquireOrigin(id Identity) *originEntry {
	origins.mu.Lock()
	defer origins.mu.Unlock()
	e := origins.m[id]
	if e == nil {
		e = &originEntry{id: id}
		origins.m[id] = e
	}
	e.refs++
	return e
}

// release drops a reference; the last one removes the entry.
func (e *originEntry) release() {
	origins.mu.Lock()
	defer origins.mu.Unlock()
	e.refs--
	if e.refs < 0 {
		panic("targets: origin entry released more often than acquired")
	}
	if e.refs == 0 && origins.m[e.id] == e {
		delete(origins.m, e.id)
	}
}

// attach makes s an active snapshot of the origin: origin writes copy to
// it from now on. A snapshot of another table over the same COW device is
// the one s replaces (a reload: dm's handover); s takes its exceptions
// over, and that one gets no more copies.
//
// e.mu is held only to swap pointers, never across I/O: origin writes of
// every device over this origin wait for it. Reading the COW's metadata
// (seconds for a large store, a remote timeout or more for a dead one) is
// done before it, by freshen, and only when s's store may be out of date:
// a snapshot over the same COW left the origin since it was read. A
// snapshot that leaves while freshen reads changes e.gen again, and the
// read is done again.
func (e *originEntry) attach(s *snapshot) {
	for !e.tryAttach(s, false) {
		if err := s.freshen(); err != nil {
			// PreResume read it already; something left since, and this
			// read failed: as dm's failed handover, the snapshot goes
			// live invalid (Resume cannot refuse).
			slog.Error("snapshot: invalidated: reloading the COW device failed", "cow", s.cow.Path(), "err", err)
			s.store.Load().invalidate()
			e.tryAttach(s, true)
			return
		}
	}
}

// tryAttach attaches s, handing over from the snapshot it replaces, if
// s's store is up to date (or anyway); false: a snapshot over the same
// COW left since s's store was read, which must be read again first. The
// handover moves old's store, as dm's __handover_exceptions swaps the two
// stores: old's exceptions are all committed (each commit is synced before
// its I/O goes on), and old's table is suspended by now, its I/O drained,
// while e.mu keeps origin copies out. Old's state comes over too, as dm's
// handover copies valid and overflowed: an overflow is kept nowhere on the
// device, and an invalid mark may not be there either (its write failed).
func (e *originEntry) tryAttach(s *snapshot, anyway bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.attached.Load() {
		return true
	}
	var old *snapshot
	kept := e.snaps[:0:0]
	for _, o := range e.snaps {
		if o.cow.Identity() == s.cow.Identity() {
			old = o
			continue
		}
		kept = append(kept, o)
	}
	if old == nil && !anyway && s.store.Load().persistent && e.gen.Load() != s.loadGen {
		return false
	}
	if old != nil {
		old.attached.Store(false)
		old.handedOver.Store(true)
		s.useStore(old.store.Load().handOver(s.cow))
		e.gen.Add(1)
	}
	e.snaps = append(kept, s)
	s.attached.Store(true)
	return true
}

// holdsCow says whether a snapshot over cow is attached: the one a
// snapshot over cow attaching now would take over from.
func (e *originEntry) holdsCow(cow *Dev) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, o := range e.snaps {
		if o.cow.Identity() == cow.Identity() {
			return true
		}
	}
	return false
}

// detach stops copies to s (its table is being destroyed). A snapshot
// that is not attached (its table never went live: a failed create, a load
// replaced or cleared; or it was handed over) returns without e.mu: taking
// it waited for every origin write in flight, which hold it across their
// I/O (remote ones too), and new origin writes queued behind the waiting
// writer meanwhile. Only s's own attach makes it attached, and that is its
// table's Resume, which never runs at once with its Destroy (both run
// under the device's lock), so a false read here stays false.
func (e *originEntry) detach(s *snapshot) {
	if !s.attached.Load() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !s.attached.Load() {
		return
	}
	s.attached.Store(false)
	e.gen.Add(1)
	for i, o := range e.snaps {
		if o == s {
			e.snaps = append(e.snaps[:i], e.snaps[i+1:]...)
			return
		}
	}
}

// write runs an origin write (or discard, or zeroing) of [off, off+n):
// first the old data of every chunk it touches goes to each active
// snapshot that has no exception for it, committed; then do runs. The range
// is locked, widened to the largest chunk of the snapshots, so that a
// snapshot write filling the same chunk, or a snapshot read of it from the
// origin, waits. A snapshot whose copy fails is invalidated, and the origin
// write goes on, as dm does.
func (e *originEntry) write(src *Dev, off, n int64, do func() error) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if len(e.snaps) == 0 {
		return do()
	}
	lo, hi := e.writeRange(off, n)
	tok := e.locks.lock(lo, hi, false)
	defer tok.unlock()
	for _, s := range e.snaps {
		if !s.merging {
			s.copyOut(src, off, n)
		}
	}
	return do()
}

// writeRange is the range an origin write of [off, off+n) holds: its
// chunks, in the largest chunk size of the snapshots; e.mu held.
func (e *originEntry) writeRange(off, n int64) (lo, hi int64) {
	var g int64
	for _, s := range e.snaps {
		g = max(g, s.store.Load().lay.chunk)
	}
	return off / g * g, (off + n + g - 1) / g * g
}

// copyOut gives s the old data of the chunks [off, off+n) touches that it
// has no exception for, in one commit, copied run by run (copyChunks). The
// caller holds their range. Their COW chunks are taken in one lock hold
// (prepareRun), so that they lie end to end and are one write: taken one
// at a time, they alternated with those of the other origin writes in
// flight, and a copy was cut into several writes.
func (s *snapshot) copyOut(src *Dev, off, n int64) {
	st, olds := s.toCopy(off, n)
	if len(olds) == 0 { // a rewrite copies nothing
		return
	}
	pairs, err := st.prepareRun(len(olds), func(i int) uint64 { return olds[i] })
	if err != nil {
		s.copyFailed(st, olds[len(pairs)], err)
		return
	}
	if err := copyChunks(src, st, pairs); err != nil {
		s.copyFailed(st, pairs[0].old, err)
		return
	}
	s.copied.Add(uint64(len(pairs)))
	if err := st.commit(pairs); err != nil {
		slog.Error("snapshot: invalidated", "cow", s.cow.Path(), "err", err)
	}
}

// toCopy is s's store and the chunks an origin write of [off, off+n)
// must copy to it first: none for an invalid snapshot, past its end, or
// where it has exceptions already.
func (s *snapshot) toCopy(off, n int64) (*cowStore, []uint64) {
	st := s.store.Load()
	// Only the part of the write before the snapshot's end concerns it:
	// dm's __origin_write skips a snapshot when the write starts at or past
	// its table's size, and dm's origin splits writes at its snapshots'
	// smallest chunk, so a chunk is copied when the write changes a sector
	// of it before the end (a chunk the end cuts is copied whole). A gdm
	// target knows only its own length: its table's size when it is the
	// table's only target, as LVM makes them. Uncut, such writes filled
	// the COW with chunks the snapshot never shows, and a full COW
	// invalidated it.
	n = min(n, int64(s.sectors)*SectorSize-off)
	if valid, _ := st.state(); !valid || n <= 0 {
		return st, nil
	}
	cs := st.lay.chunk
	return st, st.unmapped(uint64(off/cs), uint64((off+n-1)/cs))
}

// copyFailed invalidates s, whose copy of an origin chunk found no room or
// failed, as dm does: the origin write goes on without it.
func (s *snapshot) copyFailed(st *cowStore, chunk uint64, err error) {
	slog.Error("snapshot: invalidated: no room for, or no copy of, an origin chunk",
		"cow", s.cow.Path(), "chunk", chunk, "err", err)
	st.invalidate()
}
