package targets

import "context"

// linear over a remote device, or over a block device read with O_DIRECT
// (dev_aio.go), takes requests asynchronously (see AsyncTarget); over a
// file it does not.

var _ AsyncTarget = (*linear)(nil)

// CanAsync says whether the device is remote or takes AIO.
func (l *linear) CanAsync() bool { return l.dev.Remote() || l.dev.asyncIO() }

// CanSpliceWrite says whether the remote device can splice writes.
func (l *linear) CanSpliceWrite() bool { return l.dev.SplicesWrites() }

// ReadAsync starts a read of the remote device at the target's offset.
func (l *linear) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	return l.dev.ReadAsync(ctx, p, l.offset+off, done)
}

// WriteAsync starts a write to the remote device at the target's offset.
func (l *linear) WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	return l.dev.WriteAsync(ctx, p, l.offset+off, done)
}

// SpliceWriteAsync starts a write to the remote device at the target's
// offset, its data taken from pipe, then tail.
func (l *linear) SpliceWriteAsync(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64, done func(error)) bool {
	return l.dev.SpliceWriteAsync(ctx, pipe, inPipe, tail, l.offset+off, done)
}

// SpliceReadAsync starts moving a range of the remote device, at the
// target's offset, into pipe.
func (l *linear) SpliceReadAsync(ctx context.Context, pipe int, off, n int64, done func(error)) bool {
	return l.dev.SpliceReadAsync(ctx, pipe, l.offset+off, n, done)
}

// AsyncErr is the device's error for a request at off.
func (l *linear) AsyncErr(kind AsyncKind, off, _ int64, err error) error {
	return l.dev.asyncErr(kind, l.offset+off, err)
}
