package targets

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gdm-project/gdm/internal/logwrites"
)

// logPending is one request waiting to be logged: its entry, and the
// sector buffer it is written from (the entry sector, filled in when it is
// logged, then the data). A zero entry has no data in buf: its sectors are
// written as zeros at log time, so that zeroing a large range costs no
// memory while it waits for a flush.
type logPending struct {
	entry logwrites.Entry
	mark  string
	buf   []byte
	zero  bool
}

// logWriter appends entries to a log device in dm's layout. One mutex
// serializes the appends: entries are laid out one after another, so they
// are allocated and written in one order, as dm's single log thread does.
//
// The log's sector is the mapped device's logical block size, as dm's is
// (its super block says which): an entry's header takes one, its data
// whole ones, and its sector and length count them. next and end count
// 512-byte sectors all the same, as dm's next_sector does, since the
// status shows it.
type logWriter struct {
	dev    *Dev
	sector int64       // bytes in a log sector
	on     atomic.Bool // logging enabled: false once the log is full or broken

	mu sync.Mutex
	// entries and next are changed under mu, and read without it by the
	// status (state), which must not wait for an append's writes to the
	// log device (mu is held across them).
	entries   atomic.Uint64 // entries logged
	next      atomic.Uint64 // dm's next_sector: the first free 512-byte sector
	end       uint64        // the log's size in 512-byte sectors; 0: no end
	unflushed []logPending  // completed plain writes and discards, in completion order
	// What unflushed holds: its buffers' bytes, and the log sectors (of
	// 512 bytes) its entries will take. overflows: its last entry is one
	// the log will have no room for, kept without its data (see held).
	heldBytes   int64
	heldSectors uint64
	overflows   bool
}

// maxHeldBytes bounds the data a log-writes target holds for its next
// flush. dm holds it all, in pages it allocates per write, and a client
// that never flushes would make gdm hold all it writes. Past the bound
// logging stops, as dm's does when it cannot allocate those pages, and
// what was held is dropped. A variable: tests lower it.
var maxHeldBytes int64 = 256 << 20

// newLogWriter logs to dev in sectors of sector bytes; the super block
// takes the first.
func newLogWriter(dev *Dev, sector int64) *logWriter {
	w := &logWriter{dev: dev, sector: sector, end: uint64(dev.Size() / SectorSize)}
	w.next.Store(uint64(sector / SectorSize))
	w.on.Store(true)
	return w
}

// markMax is the longest mark dm keeps: a log sector less the entry's
// header and a NUL; longer names are cut there.
func (w *logWriter) markMax() int { return int(w.sector) - logwrites.EntryLen - 1 }

// state is the status's numbers, without mu (see entries): the three
// may be of moments an append apart.
func (w *logWriter) state() (entries, next uint64, enabled bool) {
	return w.entries.Load(), w.next.Load(), w.on.Load()
}

// pendingWrite makes a pending entry for a write of data to byte off (both
// whole log sectors) with flags: data is copied, as the caller's buffer is
// reused once the write returns.
func (w *logWriter) pendingWrite(off int64, data []byte, flags uint64) logPending {
	buf := getBuf(int(w.sector) + len(data))
	copy(buf[w.sector:], data)
	return logPending{buf: buf, entry: logwrites.Entry{
		Sector: uint64(off / w.sector), NrSectors: uint64(int64(len(data)) / w.sector), Flags: flags}}
}

// pendingRange is a pending entry without data: a discard, or a zeroed
// range.
func (w *logWriter) pendingRange(off, n int64, flags uint64, zero bool) logPending {
	return logPending{zero: zero, buf: getBuf(int(w.sector)), entry: logwrites.Entry{
		Sector: uint64(off / w.sector), NrSectors: uint64(n / w.sector), Flags: flags}}
}

// completed takes requests that completed: FUA writes are logged at once,
// the others wait for the next flush (held).
func (w *logWriter) completed(ps ...logPending) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range ps {
		if p.entry.Flags&logwrites.FlagFUA != 0 {
			w.appendLocked(p)
		} else {
			w.heldLocked(p)
		}
	}
}

// heldLocked keeps p for the next flush, unless it can never be logged.
// Entries are logged in the order they are held, and the log's end only
// comes nearer (FUA writes and marks are logged meanwhile): so an entry
// that would reach the end after what is held before it, from where the
// log is now, never fits, and the flush would stop logging there. Such an
// entry is kept without its data, for the flush to count its space and
// stop logging as dm does; every entry after it is dropped at once, as
// that flush would drop it. A small log so bounds what a client that
// never flushes makes gdm hold; maxHeldBytes bounds the rest.
func (w *logWriter) heldLocked(p logPending) {
	if w.overflows || !w.on.Load() {
		putBuf(p.buf)
		return
	}
	sectors := p.entry.LogSectors() * uint64(w.sector/SectorSize)
	if w.end != 0 && w.next.Load()+w.heldSectors+sectors >= w.end {
		putBuf(p.buf)
		p.buf = nil // appendLocked stops logging before it would write it
		w.overflows = true
	} else if w.heldBytes+int64(len(p.buf)) > maxHeldBytes {
		w.on.Store(false)
		w.dropHeldLocked()
		putBuf(p.buf)
		return
	}
	w.unflushed = append(w.unflushed, p)
	w.heldBytes += int64(len(p.buf))
	w.heldSectors += sectors
}

// dropHeldLocked frees what is held.
func (w *logWriter) dropHeldLocked() {
	for _, p := range w.unflushed {
		putBuf(p.buf)
	}
	w.unflushed = nil
	w.heldBytes, w.heldSectors, w.overflows = 0, 0, false
}

// takeUnflushed is what a FLUSH covers: the requests completed before it.
func (w *logWriter) takeUnflushed() []logPending {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.unflushed
	w.unflushed = nil
	w.heldBytes, w.heldSectors, w.overflows = 0, 0, false
	return b
}

// flushed logs a completed FLUSH: the requests it covered, then its entry.
func (w *logWriter) flushed(batch []logPending) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range batch {
		w.appendLocked(p)
	}
	w.appendLocked(w.pendingRange(0, 0, logwrites.FlagFlush, false))
}

// flushPending logs the requests no flush followed (at destroy).
func (w *logWriter) flushPending() {
	batch := w.takeUnflushed()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range batch {
		w.appendLocked(p)
	}
}

// mark logs a mark at once. The name ends at a NUL and is cut to what
// fits an entry sector, as dm cuts it.
func (w *logWriter) mark(name string) {
	name, _, _ = strings.Cut(name, "\x00")
	if len(name) > w.markMax() {
		name = name[:w.markMax()]
	}
	p := w.pendingRange(0, 0, logwrites.FlagMark, false)
	p.mark = name
	w.mu.Lock()
	defer w.mu.Unlock()
	w.appendLocked(p)
}

// appendLocked writes p at the log's end, in dm's steps: the space is
// taken first, and if it reaches the log's last sector, logging stops
// (the space stays counted, as dm's status shows it); a FUA write or a
// mark then rewrites the super block. A failed log write stops logging too.
func (w *logWriter) appendLocked(p logPending) {
	defer putBuf(p.buf)
	if !w.on.Load() {
		return
	}
	at := int64(w.next.Load()) * SectorSize
	next := w.next.Add(p.entry.LogSectors() * uint64(w.sector/SectorSize))
	if w.end != 0 && next >= w.end || p.buf == nil {
		// A held entry without its data (heldLocked) always ends here
		// on the first test; the second only makes sure.
		w.on.Store(false)
		return
	}
	w.entries.Add(1)
	logwrites.AppendEntry(p.buf[:0], p.entry, p.mark, int(w.sector))
	err := w.dev.WriteAt(p.buf, at)
	if err == nil && p.zero {
		err = w.dev.writeZeros(at+w.sector, int64(p.entry.NrSectors)*w.sector)
	}
	if err == nil && p.entry.Flags&(logwrites.FlagFUA|logwrites.FlagMark) != 0 {
		super := logwrites.AppendSuper(nil, logwrites.Super{NrEntries: w.entries.Load(), SectorSize: uint32(w.sector)})
		err = w.dev.WriteAt(super, 0)
	}
	if err != nil {
		w.on.Store(false)
	}
}

// requeue puts a batch whose flush failed back before the requests
// completed since, held again from the start (heldLocked). An entry kept
// without its data is found not to fit again: the log's next sector and
// what is held before it have only grown since it was first held.
func (w *logWriter) requeue(batch []logPending) {
	w.mu.Lock()
	defer w.mu.Unlock()
	since := w.unflushed
	w.unflushed = nil
	w.heldBytes, w.heldSectors, w.overflows = 0, 0, false
	for _, p := range append(batch, since...) {
		w.heldLocked(p)
	}
}
