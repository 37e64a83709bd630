package targets

import "context"

// dust over a block device read with O_DIRECT (or a remote one) takes a
// read or write asynchronously, as linear does, where its bad-block rules
// have nothing to say: the target in bypass mode, or no listed block
// judging the range. Otherwise it declines, and the blocking path fails
// the read, or writes piece by piece.

var _ AsyncTarget = (*dust)(nil)

// CanAsync says whether the device is remote or takes AIO.
func (d *dust) CanAsync() bool { return d.dev.Remote() || d.dev.asyncIO() }

// CanSpliceWrite says whether the remote device can splice writes.
func (d *dust) CanSpliceWrite() bool { return d.dev.SplicesWrites() }

// clean says whether [off, off+n) is a plain read or write now: the
// target bypassing, or no listed block among those that judge the range.
// It counts nothing: a request it declines is judged again, and counted,
// on the blocking path.
func (d *dust) clean(off, n int64) bool {
	if n <= 0 {
		return false
	}
	if !d.enabled.Load() {
		return true
	}
	_, bad := d.bad.anyIn(d.judged(off, n))
	return !bad
}

// ReadAsync starts a read no bad block judges.
func (d *dust) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	return d.clean(off, int64(len(p))) && d.dev.ReadAsync(ctx, p, d.offset+off, done)
}

// WriteAsync starts a write no bad block judges.
func (d *dust) WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	return d.clean(off, int64(len(p))) && d.dev.WriteAsync(ctx, p, d.offset+off, done)
}

// SpliceWriteAsync starts a spliced write to a remote device that no bad
// block judges.
func (d *dust) SpliceWriteAsync(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64, done func(error)) bool {
	return d.clean(off, inPipe+int64(len(tail))) && d.dev.SpliceWriteAsync(ctx, pipe, inPipe, tail, d.offset+off, done)
}

// SpliceReadAsync starts a spliced read of a remote device that no bad
// block judges.
func (d *dust) SpliceReadAsync(ctx context.Context, pipe int, off, n int64, done func(error)) bool {
	return d.clean(off, n) && d.dev.SpliceReadAsync(ctx, pipe, d.offset+off, n, done)
}

// AsyncErr is the device's error for a request at off.
func (d *dust) AsyncErr(kind AsyncKind, off, _ int64, err error) error {
	return d.dev.asyncErr(kind, d.offset+off, err)
}
