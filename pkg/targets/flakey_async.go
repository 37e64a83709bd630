package targets

import "context"

// flakey over a block device read with O_DIRECT (or a remote one) is
// linear in its up interval, and there takes reads and writes
// asynchronously as linear does. In the down interval it declines, and
// the blocking path fails, drops or corrupts the request: the interval is
// judged once, when the request starts, as dm judges it when it maps the
// bio.

var _ AsyncTarget = (*flakey)(nil)

// CanAsync says whether the device is remote or takes AIO.
func (f *flakey) CanAsync() bool { return f.dev.Remote() || f.dev.asyncIO() }

// CanSpliceWrite says whether the remote device can splice writes.
func (f *flakey) CanSpliceWrite() bool { return f.dev.SplicesWrites() }

// ReadAsync starts a read in the up interval.
func (f *flakey) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	return !f.isDown() && f.dev.ReadAsync(ctx, p, f.offset+off, done)
}

// WriteAsync starts a write in the up interval.
func (f *flakey) WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	return !f.isDown() && f.dev.WriteAsync(ctx, p, f.offset+off, done)
}

// SpliceWriteAsync starts a spliced write to a remote device in the up
// interval.
func (f *flakey) SpliceWriteAsync(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64, done func(error)) bool {
	return !f.isDown() && f.dev.SpliceWriteAsync(ctx, pipe, inPipe, tail, f.offset+off, done)
}

// SpliceReadAsync starts a spliced read of a remote device in the up
// interval.
func (f *flakey) SpliceReadAsync(ctx context.Context, pipe int, off, n int64, done func(error)) bool {
	return !f.isDown() && f.dev.SpliceReadAsync(ctx, pipe, f.offset+off, n, done)
}

// AsyncErr is the device's error for a request at off.
func (f *flakey) AsyncErr(kind AsyncKind, off, _ int64, err error) error {
	return f.dev.asyncErr(kind, f.offset+off, err)
}
