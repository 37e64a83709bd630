package logwrites

import (
	"errors"
	"fmt"
	"io"
)

// Device is what a log is replayed onto: a file or block device.
type Device interface {
	WriteAt(p []byte, off int64) (int, error)
	// Discard makes a range read as zeros (or drops it, where the device
	// cannot say what it reads as afterwards).
	Discard(off, n int64) error
}

// Options say how far to replay and where to stop to check, as
// replay-log's options do.
type Options struct {
	// StartMark skips the entries up to and including the mark of that
	// name without replaying them: the device already holds their effect
	// (from an earlier replay up to the mark).
	StartMark string
	// Limit stops after that many entries are replayed; 0 is no limit.
	Limit uint64
	// EndMark stops after the mark of that name.
	EndMark string
	// CheckAt says after which entries to call Check; nil never.
	CheckAt func(Record) bool
	// Check runs after each entry CheckAt picks (a fsck of the device);
	// an error stops the replay with it.
	Check func(Record) error
	// NoDiscard skips discard entries.
	NoDiscard bool
	// Trace, if set, sees each entry before it is replayed (-v).
	Trace func(Record)
	// DryRun reads and traces the entries the other options pick and
	// applies none: dev may be nil (a listing of that window).
	DryRun bool
}

// Errors of a replay.
var (
	ErrStartMark = errors.New("logwrites: start mark not in the log")
	ErrEndMark   = errors.New("logwrites: end mark not in the log (replayed it all)")
)

// CheckEvery picks every n-th replayed entry (replay-log's --check N).
func CheckEvery(n uint64) func(Record) bool {
	var seen uint64
	return func(Record) bool { seen++; return n > 0 && seen%n == 0 }
}

// CheckFlags picks the entries with any of flags (FlagFUA: --check fua).
func CheckFlags(flags uint64) func(Record) bool {
	return func(r Record) bool { return r.Entry.Flags&flags != 0 }
}

// Replay applies l's entries to dev as o says and returns how many it
// replayed. dev is not synced: the caller does that.
func Replay(l *Reader, dev Device, o Options) (uint64, error) {
	if o.StartMark != "" {
		if err := skipTo(l, o.StartMark); err != nil {
			return 0, err
		}
	}
	var n uint64
	buf := make([]byte, 0, 1<<20)
	for {
		rec, err := l.Next()
		if err == io.EOF {
			if o.EndMark != "" {
				return n, fmt.Errorf("%w: %q", ErrEndMark, o.EndMark)
			}
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if o.Trace != nil {
			o.Trace(rec)
		}
		if !o.DryRun {
			if err := apply(l, dev, rec, buf, o.NoDiscard); err != nil {
				return n, err
			}
		}
		n++
		if o.CheckAt != nil && o.CheckAt(rec) {
			if err := o.Check(rec); err != nil {
				return n, err
			}
		}
		if (o.Limit != 0 && n == o.Limit) || (o.EndMark != "" && rec.Entry.Flags&FlagMark != 0 && rec.Mark == o.EndMark) {
			return n, nil
		}
	}
}

// skipTo reads entries up to and including the mark named name.
func skipTo(l *Reader, name string) error {
	for {
		rec, err := l.Next()
		if err == io.EOF {
			return fmt.Errorf("%w: %q", ErrStartMark, name)
		}
		if err != nil {
			return err
		}
		if rec.Entry.Flags&FlagMark != 0 && rec.Mark == name {
			return nil
		}
	}
}

// apply replays one entry: a discard's range is discarded, a write's data
// copied from the log in pieces of buf's capacity; flushes and marks carry
// nothing to replay.
func apply(l *Reader, dev Device, rec Record, buf []byte, noDiscard bool) error {
	off, n := l.Bytes(rec)
	if n == 0 {
		return nil
	}
	if rec.Entry.Flags&FlagDiscard != 0 {
		if noDiscard {
			return nil
		}
		if err := dev.Discard(off, n); err != nil {
			return fmt.Errorf("logwrites: entry %d: discard: %w", rec.Index, err)
		}
		return nil
	}
	for done := int64(0); done < n; {
		p := buf[:min(int64(cap(buf)), n-done)]
		if err := l.Data(rec, p, done); err != nil {
			return err
		}
		if _, err := dev.WriteAt(p, off+done); err != nil {
			return fmt.Errorf("logwrites: entry %d: %w", rec.Index, err)
		}
		done += int64(len(p))
	}
	return nil
}
