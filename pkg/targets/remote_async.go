package targets

import "context"

// AsyncTarget is an optional Target capability: a target over a remote
// device starts a request and returns, and done gets its result later,
// from the device's reply reader (see nbdclient's async calls); over a
// block device read with O_DIRECT, from the AIO reaper (dev_aio.go). The
// table uses it for a request that lies within this one target, so that
// its server need not park a goroutine per request on a remote leg or a
// disk.
//
// ReadAsync and WriteAsync report false, having done nothing and never to
// call done, when they cannot start the request at once; the caller then
// does it with ReadAt or WriteAt. Reporting true, they call done exactly
// once, perhaps before they return. done must not block (it runs on a
// reader that other devices' requests share), and p must stay valid
// until done is called. Writes have no FUA here: those take WriteAt.
type AsyncTarget interface {
	// CanAsync says whether this target may take requests asynchronously
	// at all (a linear target over a remote device), so that a table
	// asks before it holds anything for the request.
	CanAsync() bool
	// CanSpliceWrite says likewise whether SpliceWriteAsync may take
	// writes (a remote connection with a descriptor: not TLS).
	CanSpliceWrite() bool
	ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool
	WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool
	// SpliceWriteAsync is WriteAsync with the data's first inPipe bytes
	// in pipe (the read end of a pipe(2) holding exactly them), which the
	// remote's connection splices into its socket, and the rest in tail
	// (nbdclient.SpliceWriteAsync). After an error the pipe may still
	// hold part of its bytes.
	SpliceWriteAsync(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64, done func(error)) bool
	// SpliceReadAsync is ReadAsync into pipe (the write end of a pipe(2)
	// with room for the range), which the remote's connection splices
	// from its socket (nbdclient.SpliceReadAsync). AsyncErr makes its
	// result ErrPipeFull where SpliceTo would answer that: the pipe may
	// then hold part of the range, and the caller reads it the ordinary
	// way.
	SpliceReadAsync(ctx context.Context, pipe int, off, n int64, done func(error)) bool
	// AsyncErr is what a request's caller is to make of the result err
	// its done got, for a request of kind and n bytes at off (the
	// target's offset):
	// the device's error, with its context, counted as the target's; for
	// a spliced read, ErrPipeFull where the range was not moved (not
	// counted). done gets the remote's result as it is, and its caller
	// (the table) passes it through AsyncErr: so no layer wraps done in a
	// closure of its own, which cost an allocation per layer per request.
	AsyncErr(kind AsyncKind, off, n int64, err error) error
}

// AsyncKind is what an asynchronous request did (AsyncTarget.AsyncErr).
type AsyncKind uint8

const (
	AsyncRead       AsyncKind = iota // ReadAsync
	AsyncWrite                       // WriteAsync, SpliceWriteAsync
	AsyncSpliceRead                  // SpliceReadAsync
)

// ReadAsync starts a read of a remote device, or of a block device read
// with O_DIRECT (dev_aio.go; see AsyncTarget); a file reports false.
func (d *Dev) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	if d.remote == nil {
		return d.directAsync(false, p, off, done)
	}
	return d.remote.ReadAsync(ctx, p, off, done)
}

// WriteAsync starts a write to a remote device, or to a block device
// written with O_DIRECT (see AsyncTarget).
func (d *Dev) WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	if d.remote == nil {
		return d.directAsync(true, p, off, done)
	}
	return d.remote.WriteAsync(ctx, p, off, done)
}

// SpliceWriteAsync starts a write to a remote device of inPipe bytes
// taken from pipe, then tail (see AsyncTarget).
func (d *Dev) SpliceWriteAsync(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64, done func(error)) bool {
	if d.remote == nil {
		return false
	}
	return d.remote.SpliceWriteAsync(ctx, pipe, inPipe, tail, off, done)
}

// SpliceReadAsync starts moving n bytes at off of a remote device into
// pipe (see AsyncTarget).
func (d *Dev) SpliceReadAsync(ctx context.Context, pipe int, off, n int64, done func(error)) bool {
	if d.remote == nil {
		return false
	}
	return d.remote.SpliceReadAsync(ctx, pipe, off, n, done)
}

// asyncErr is an asynchronous request's result in the device's words
// (see AsyncTarget.AsyncErr); done got the client's as it is.
func (d *Dev) asyncErr(kind AsyncKind, off int64, err error) error {
	if d.remote == nil {
		return d.localAsyncErr(kind, off, err)
	}
	switch kind {
	case AsyncRead:
		return d.remoteErr("read", off, err)
	case AsyncSpliceRead:
		return d.spliceErr(off, err)
	}
	return d.remoteErr("write", off, err)
}

// SplicesWrites says whether the device is remote and its connections can
// splice writes (nbdclient.Client.SplicesWrites).
func (d *Dev) SplicesWrites() bool { return d.remote != nil && d.remote.SplicesWrites() }
