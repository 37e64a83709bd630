package targets

import (
	"context"

	"github.com/gdm-project/gdm/internal/logwrites"
)

// log-writes' I/O is linear's at the target's own start on the mapped
// device (see Place), plus what it hands the log.
// Reads, extents and splices only pass through. The log counts whole
// sectors, and NBD lets a client write a byte range: a request that
// starts or ends inside a sector is logged with those edge sectors as they
// read after it completed (the whole request, for a write), which is what
// a replay must put there. A failed request is not logged (dm logs a
// write whether it failed or not; its data on the device is then unknown,
// which no replay can reproduce).

func (l *logWrites) ReadAt(_ context.Context, p []byte, off int64) error {
	off, err := l.at(off, int64(len(p)))
	if err != nil {
		return err
	}
	return l.dev.ReadAt(p, off)
}

func (l *logWrites) SpliceTo(_ context.Context, pipe int, off, n int64) error {
	off, err := l.at(off, n)
	if err != nil {
		return err
	}
	return l.dev.SpliceTo(pipe, off, n)
}

func (l *logWrites) Extents(_ context.Context, off, length int64, emit func(Extent) bool) error {
	off, err := l.at(off, length)
	if err != nil {
		return err
	}
	return l.dev.Extents(off, length, emit)
}

// sectorAligned reports whether [off, off+n) is whole log sectors.
func (l *logWrites) sectorAligned(off, n int64) bool {
	return off%l.log.sector == 0 && n%l.log.sector == 0
}

// WriteAt writes p; with FUA it syncs the device and logs the write at
// once, else the write waits in memory for the next FLUSH.
func (l *logWrites) WriteAt(_ context.Context, p []byte, off int64, flags WriteFlags) error {
	off, err := l.at(off, int64(len(p)))
	if err != nil {
		return err
	}
	logging := l.log.on.Load()
	var entryFlags uint64
	if flags&FUA != 0 {
		entryFlags = logwrites.FlagFUA
	}
	var pend logPending
	aligned := l.sectorAligned(off, int64(len(p)))
	if logging && aligned {
		pend = l.log.pendingWrite(off, p, entryFlags)
	}
	err = l.dev.WriteAt(p, off)
	if err == nil && flags&FUA != 0 {
		err = l.dev.Sync()
	}
	if err != nil || !logging || len(p) == 0 {
		return err
	}
	if !aligned {
		if pend, err = l.readBack(off, int64(len(p)), entryFlags); err != nil {
			return err
		}
	}
	l.log.completed(pend)
	return nil
}

// readBack is a pending write of the sectors [off, off+n) of <dev> touches,
// as the device holds them now.
func (l *logWrites) readBack(off, n int64, flags uint64) (logPending, error) {
	sec := l.log.sector
	start := off / sec * sec
	end := min((off+n+sec-1)/sec*sec, l.dev.Size())
	p := l.log.pendingWrite(start, make([]byte, end-start), flags)
	return p, l.dev.ReadAt(p.buf[sec:], start)
}

// Trim discards on the device and logs a discard entry, which carries no
// data (its edge sectors, if any, as writes).
func (l *logWrites) Trim(_ context.Context, off, length int64) error {
	off, err := l.at(off, length)
	if err != nil {
		return err
	}
	if err := l.dev.Trim(off, length); err != nil || !l.log.on.Load() {
		return err
	}
	return l.logRange(off, length, logwrites.FlagDiscard, false)
}

// Zero zeros on the device and logs the range as a write of zeros, which
// is what reaches dm's target: it takes no write-zeroes requests, so the
// kernel writes zero pages to it. For the same reason a fast zero, which
// must not fall back to writing zeros, is refused.
func (l *logWrites) Zero(_ context.Context, off, length int64, flags ZeroFlags) error {
	if flags.Fast {
		return ErrNotSupported
	}
	off, err := l.at(off, length)
	if err != nil {
		return err
	}
	if err := l.dev.Zero(off, length, flags); err != nil || !l.log.on.Load() {
		return err
	}
	return l.logRange(off, length, 0, true)
}

// logRange hands a completed discard or zeroing of [off, off+n) of <dev>
// to the log: its whole sectors as one entry with flags, the sectors it only
// touches read back as writes.
func (l *logWrites) logRange(off, n int64, flags uint64, zero bool) error {
	if n <= 0 {
		return nil
	}
	sec := l.log.sector
	first := (off + sec - 1) / sec * sec
	last := (off + n) / sec * sec
	if first >= last { // inside one sector, or two without a whole one between
		p, err := l.readBack(off, n, 0)
		if err == nil {
			l.log.completed(p)
		}
		return err
	}
	var ps []logPending
	if first > off {
		head, err := l.readBack(off, first-off, 0)
		if err != nil {
			return err
		}
		ps = append(ps, head)
	}
	ps = append(ps, l.log.pendingRange(first, last-first, flags, zero))
	if last < off+n {
		tail, err := l.readBack(last, off+n-last, 0)
		if err != nil {
			return err
		}
		ps = append(ps, tail)
	}
	l.log.completed(ps...)
	return nil
}

// FlushRequest serves a client's FLUSH as dm's target sees its flush bio:
// the requests completed before it are the ones it covers; once the
// device's flush completed (synced here, before the table's own sync of
// every device, which then makes the log durable too) they are logged,
// then the flush's entry. A failed sync logs nothing: the requests wait
// for the next flush.
//
// Flushes run one at a time. With two at once, the one issued second could
// find nothing to take (the first took it), complete first, and let its
// client's next FUA write be logged before writes that completed before
// that flush, which the first logs only later: dm's log can show that
// order; gdm's does not.
func (l *logWrites) FlushRequest(context.Context) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	batch := l.log.takeUnflushed()
	if !l.log.on.Load() {
		return nil // logging stopped: what waited is dropped, as dm frees it
	}
	if err := l.dev.Sync(); err != nil {
		l.log.requeue(batch)
		return err
	}
	l.log.flushed(batch)
	return nil
}
