package table

// Asynchronous I/O on a device (nbdserver.AsyncExport): a request that
// lies within one target able to take it asynchronously (linear over a
// remote device: targets.AsyncTarget) is started there, and its done is
// called when the remote answers, from the remote's reply reader.
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

// startAsync starts op on the live table's target if the whole range lies
// in one that takes it (asked before holding anything: tables are
// immutable, so a table just read from the slot can be looked at even if
// a swap is retiring it; tryGet then decides). The holder it takes is put
// after done has run.
func (d *Device) startAsync(ctx context.Context, op Op, p []byte, off int64, done func(error)) bool {
	n := int64(len(p))
	t := d.live.Load()
	if t == nil || n == 0 || !t.traits().asyncs || d.gate.Load() != nil || t.check(off, n, op) != nil {
		return false
	}
	i, tOff, m := t.locate(off, n)
	at, ok := t.targets[i].(targets.AsyncTarget)
	if !ok || m != n || !at.CanAsync() {
		return false
	}
	if ok, _ := d.tryGet(t); !ok {
		return false // suspended, quiescing or swapped: the usual way
	}
	clock := d.startClock()
	complete := func(err error) {
		t.stats.record(i, op, n, err)
		d.count(op, n, err, clock)
		done(err)
		t.Put()
	}
	if op == OpWrite {
		ok = at.WriteAsync(ctx, p, tOff, complete)
	} else {
		ok = at.ReadAsync(ctx, p, tOff, complete)
	}
	if !ok {
		t.Put()
		return false
	}
	d.stats.Async.Add(1)
	return true
}
