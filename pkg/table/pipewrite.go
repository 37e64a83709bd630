package table

import (
	"context"

	"github.com/gdm-project/gdm/pkg/targets"
)

// Writes from a pipe: the NBD server splices a large write's payload from
// its client's socket into a pipe, and a target over a local file splices
// it on into the file (targets.PipeWriter), one copy where a read into
// memory and a pwrite made two.

// MayWriteFromPipe says, asking the live table only, whether a write of n
// bytes at off lies within one target that writes from pipes, so that
// the server puts its payload in a pipe. The table may change before the
// write: WriteFromPipe then declines, and the server writes the ordinary
// way.
func (d *Device) MayWriteFromPipe(off, n int64) bool {
	t := d.live.Load()
	if d.readOnly || t == nil || n == 0 || t.check(off, n, OpWrite) != nil {
		return false
	}
	_, pw := t.pipeTarget(off, n)
	return pw != nil
}

// WriteFromPipe writes inPipe bytes taken from pipe, then tail, at off,
// on the live table (see Table.WriteFromPipe). targets.ErrPipeFull: not
// done, nothing taken from the pipe and nothing counted.
func (d *Device) WriteFromPipe(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64) error {
	if d.readOnly {
		return ErrReadOnly
	}
	return d.io(ctx, OpWrite, inPipe+int64(len(tail)), func(t *Table) error {
		return t.WriteFromPipe(ctx, pipe, inPipe, tail, off)
	})
}

// WriteFromPipe writes inPipe bytes taken from pipe, then tail, at off,
// if the range lies within one target that writes from pipes; else it
// answers targets.ErrPipeFull, having taken nothing.
func (t *Table) WriteFromPipe(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64) error {
	n := inPipe + int64(len(tail))
	if err := t.check(off, n, OpWrite); err != nil {
		return err
	}
	i, pw := t.pipeTarget(off, n)
	if pw == nil {
		return targets.ErrPipeFull
	}
	err := pw.WriteFromPipe(ctx, pipe, inPipe, tail, off-t.starts[i])
	if err != targets.ErrPipeFull {
		t.stats.record(i, OpWrite, n, err)
	}
	return err
}

// pipeTarget is the target holding all of [off, off+n), if it writes
// from pipes; off and n must be inside the table.
func (t *Table) pipeTarget(off, n int64) (int, targets.PipeWriter) {
	i, _, m := t.locate(off, n)
	pw, ok := t.targets[i].(targets.PipeWriter)
	if !ok || m != n || !pw.CanWriteFromPipe() {
		return 0, nil
	}
	return i, pw
}
