package targets

import "context"

// A snapshot-origin over a block device read with O_DIRECT (or a remote
// one) reads asynchronously, as linear does: a read goes straight to the
// origin whatever the snapshots hold, so it needs nothing of theirs. A
// write first copies the chunks it changes to every snapshot, which takes
// the blocking path (WriteAsync declines).

var _ AsyncTarget = (*snapOrigin)(nil)

// CanAsync says whether the origin is remote or takes AIO.
func (o *snapOrigin) CanAsync() bool { return o.dev.Remote() || o.dev.asyncIO() }

// CanSpliceWrite: no (see above).
func (o *snapOrigin) CanSpliceWrite() bool { return false }

// ReadAsync starts a read of the origin.
func (o *snapOrigin) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	return o.dev.ReadAsync(ctx, p, off, done)
}

// SpliceReadAsync starts moving a range of a remote origin into pipe.
func (o *snapOrigin) SpliceReadAsync(ctx context.Context, pipe int, off, n int64, done func(error)) bool {
	return o.dev.SpliceReadAsync(ctx, pipe, off, n, done)
}

// WriteAsync and SpliceWriteAsync decline: a write copies chunks first.
func (o *snapOrigin) WriteAsync(context.Context, []byte, int64, func(error)) bool { return false }

func (o *snapOrigin) SpliceWriteAsync(context.Context, int, int64, []byte, int64, func(error)) bool {
	return false
}

// AsyncErr is the origin's error for a read at off.
func (o *snapOrigin) AsyncErr(kind AsyncKind, off, _ int64, err error) error {
	return o.dev.asyncErr(kind, off, err)
}
