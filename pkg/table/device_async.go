package table

// Asynchronous I/O on a device (nbdserver.AsyncExport): a request that
// lies within one target able to take it asynchronously (a target over a
// remote device or over block devices read with O_DIRECT, where its rules
// allow: targets.AsyncTarget) is started there, and its done is called
// when the remote answers, from the remote's reply reader, or when the
// disk does, from the AIO reaper (or a goroutine of the target's own).
//
// The holder rules hold unchanged: the request takes its holder on the
// live table as Get does (counted first, then checked: race-free against
// a swap) but never waits for it, and gives it back with Put when it
// completes, exactly once. So a suspend's quiesce and a destroy's drain
// wait for asynchronous requests as for any other, and the table's
// remote devices are not closed under one. While the device is suspended
// (or quiescing for a swap) nothing is started here: the request is
// refused, and the server does it the usual way, which waits in Get for
// the resume, as dm holds new I/O on a suspended device.

import (
	"context"
	"sync"

	"github.com/gdm-project/gdm/pkg/targets"
)

// MayAsync says whether the live table has a target that takes requests
// asynchronously (nbdserver.AsyncExport): a device of local files answers
// no with one look at its table.
func (d *Device) MayAsync() bool {
	t := d.live.Load()
	return t != nil && t.traits().asyncs
}

// ReadAsync starts a read of len(p) bytes at off (see the top of this
// file and nbdserver.AsyncExport); false: do it with ReadAt.
func (d *Device) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	return d.startAsync(ctx, OpRead, p, off, done)
}

// WriteAsync starts a write of p at off; false: do it with WriteAt. A
// read-only device refuses, and WriteAt says why.
func (d *Device) WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	if d.readOnly {
		return false
	}
	return d.startAsync(ctx, OpWrite, p, off, done)
}

// MaySpliceWrite says, asking the live table only, whether a write of n
// bytes at off lies within one target that splices writes
// (nbdserver.SpliceWriter), so that the server puts its payload in a
// pipe.
func (d *Device) MaySpliceWrite(off, n int64) bool {
	if d.readOnly {
		return false
	}
	_, _, _, at := d.asyncTarget(OpWrite, off, n)
	return at != nil && at.CanSpliceWrite()
}

// SpliceWriteAsync starts a write at off of inPipe bytes taken from pipe
// (the read end of a pipe(2) holding exactly them), then tail (see
// targets.AsyncTarget.SpliceWriteAsync); false: write them with WriteAt.
// After an error the pipe may still hold part of its bytes.
func (d *Device) SpliceWriteAsync(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64, done func(error)) bool {
	if d.readOnly {
		return false
	}
	return d.startAsyncOp(OpWrite, targets.AsyncWrite, inPipe+int64(len(tail)), off, done, func(at targets.AsyncTarget, tOff int64, complete func(error)) bool {
		return at.SpliceWriteAsync(ctx, pipe, inPipe, tail, tOff, complete)
	})
}

// SpliceReadAsync starts moving n bytes at off into pipe (the write end
// of a pipe(2) with room for them) where the range lies within one
// target that reads asynchronously (targets.AsyncTarget.SpliceReadAsync);
// false: read them with SpliceRead or ReadAt. done gets
// targets.ErrPipeFull where the range was not moved that way (the pipe
// may hold part of it): the read is then not counted, and the caller
// reads the range the ordinary way, which counts it.
func (d *Device) SpliceReadAsync(ctx context.Context, pipe int, off, n int64, done func(error)) bool {
	return d.startAsyncOp(OpRead, targets.AsyncSpliceRead, n, off, done, func(at targets.AsyncTarget, tOff int64, complete func(error)) bool {
		return at.SpliceReadAsync(ctx, pipe, tOff, n, complete)
	})
}

// startAsync starts op on the live table's target if the whole range lies
// in one that takes it (see startAsyncOp).
func (d *Device) startAsync(ctx context.Context, op Op, p []byte, off int64, done func(error)) bool {
	kind := targets.AsyncRead
	if op == OpWrite {
		kind = targets.AsyncWrite
	}
	return d.startAsyncOp(op, kind, int64(len(p)), off, done, func(at targets.AsyncTarget, tOff int64, complete func(error)) bool {
		if op == OpWrite {
			return at.WriteAsync(ctx, p, tOff, complete)
		}
		return at.ReadAsync(ctx, p, tOff, complete)
	})
}

// asyncTarget is the live table's target that takes an op of n bytes at
// off asynchronously, with the table, the target's index and the offset
// in it; at is nil when the range does not lie whole in such a target.
// Asked before holding anything: tables are immutable, so a table just
// read from the slot can be looked at even if a swap is retiring it.
func (d *Device) asyncTarget(op Op, off, n int64) (t *Table, i int, tOff int64, at targets.AsyncTarget) {
	t = d.live.Load()
	if t == nil || n == 0 || !t.traits().asyncs || d.gate.Load() != nil || t.check(off, n, op) != nil {
		return nil, 0, 0, nil
	}
	i, tOff, m := t.locate(off, n)
	at, ok := t.targets[i].(targets.AsyncTarget)
	if !ok || m != n || !at.CanAsync() {
		return nil, 0, 0, nil
	}
	return t, i, tOff, at
}

// startAsyncOp starts an op of n bytes at off with start, on the live
// table's target, if the whole range lies in one that takes it
// (asyncTarget; tryGet then decides). The holder it takes is put after
// done has run.
func (d *Device) startAsyncOp(op Op, kind targets.AsyncKind, n, off int64, done func(error), start func(at targets.AsyncTarget, tOff int64, complete func(error)) bool) bool {
	t, i, tOff, at := d.asyncTarget(op, off, n)
	if at == nil {
		return false
	}
	if ok, _ := d.tryGet(t); !ok {
		return false // suspended, quiescing or swapped: the usual way
	}
	o := newAsyncOp()
	*o = asyncOp{d: d, t: t, at: at, i: i, op: op, kind: kind, n: n, tOff: tOff,
		clock: d.startClock(), done: done, completeFn: o.completeFn}
	if !start(at, tOff, o.completeFn) {
		o.free()
		t.Put()
		return false
	}
	d.stats.Async.Add(1)
	return true
}

// asyncOp is a request started asynchronously on a target: what its
// completion needs. It is pooled, with complete bound once (completeFn),
// so that starting a request allocates nothing here.
type asyncOp struct {
	d          *Device
	t          *Table // holds a holder on it until complete
	at         targets.AsyncTarget
	i          int // the target's index in t
	op         Op
	kind       targets.AsyncKind
	n, tOff    int64
	clock      ioClock
	done       func(error)
	completeFn func(error) // o.complete
}

var asyncOps = sync.Pool{New: func() any { return new(asyncOp) }}

func newAsyncOp() *asyncOp {
	o := asyncOps.Get().(*asyncOp)
	if o.completeFn == nil {
		o.completeFn = o.complete // once per pooled asyncOp
	}
	return o
}

func (o *asyncOp) free() {
	*o = asyncOp{completeFn: o.completeFn}
	asyncOps.Put(o)
}

// complete is the target's done: the result in the target's words
// (AsyncErr), counted, handed to done; then the holder goes back.
func (o *asyncOp) complete(err error) {
	d, t, op, n := o.d, o.t, o.op, o.n
	err = o.at.AsyncErr(o.kind, o.tOff, n, err)
	if err != targets.ErrPipeFull { // not done: the ordinary way counts it
		t.stats.record(o.i, op, n, err)
		d.count(op, n, err, o.clock)
	}
	done := o.done
	o.free()
	defer t.Put() // after done, even one that panics (see runHeld)
	done(err)
}
