// Package nbdserver is gdm's NBD server: newstyle negotiation (fixed or plain), then a
// transmission phase with many requests in flight per connection, replies in
// any order, structured replies and the base:allocation meta context.
//
// It knows nothing of dm tables: it serves any Export. On each connection,
// worker goroutines take turns reading requests in batches (as many as the
// read buffer holds, sized by how fast the backend answers). While the
// backend answers in a few microseconds, the reader serves its batch itself
// and reads on (the reader-serves mode): one goroutine per connection, no
// hand-offs. A slower backend gets one request per turn and a worker per
// request in flight (bounded in count and bytes). A server-wide watch hands
// a batch that stalls to goroutines of its own. Whoever finishes replies
// writes everything queued with one writev. An export that can answer
// later (AsyncExport: a table over a remote leg) gets its requests started
// by the reader, which reads on; they complete elsewhere (async.go).
package nbdserver

import (
	"context"
	"errors"
)

// Export is what the server serves. Every method may be called concurrently.
// Offsets and lengths are bytes and have been checked against the size the
// connection negotiated; an export whose size has since shrunk answers a
// request past its new end with an error wrapping EINVAL.
type Export interface {
	// Size in bytes now; a connection keeps the size it negotiated.
	Size() int64
	ReadAt(ctx context.Context, p []byte, off int64) error
	WriteAt(ctx context.Context, p []byte, off int64) error
	// Flush makes every completed write durable.
	Flush(ctx context.Context) error
	Trim(ctx context.Context, off, length int64) error
	// Zero makes a range read as zeros. noHole: keep it allocated. fast:
	// fail with an error wrapping ENOTSUP rather than write zeros slowly.
	Zero(ctx context.Context, off, length int64, noHole, fast bool) error
	// Extents reports allocation in order, calling emit per run (flags are
	// NBD_STATE_HOLE=1 and NBD_STATE_ZERO=2) until emit returns false. A
	// run reported past off+length is cut to the range by the server.
	Extents(ctx context.Context, off, length int64, emit func(length int64, flags uint32) bool) error
}

// ExportInfo describes an export as the handshake presents it.
type ExportInfo struct {
	Name        string
	Description string
	ReadOnly    bool
	Size        int64 // bytes, as INFO reports it
	// MinBlockSize is the smallest request the export serves, a power of
	// two (0: any size, 1 byte); NBD_INFO_BLOCK_SIZE advertises it, and a
	// preferred size of at least it.
	MinBlockSize uint32
	// NoTrim leaves NBD_FLAG_SEND_TRIM out: the export takes no discards
	// (dm's device without discard support), and a TRIM is refused with
	// EINVAL before it reaches the export.
	NoTrim bool
	// NoWriteZeroes leaves NBD_FLAG_SEND_WRITE_ZEROES (and with it
	// SEND_FAST_ZERO) out: the export takes no write-zeroes without being
	// sent the zeros (dm's device without write-zeroes support), so the
	// client writes them, and a WRITE_ZEROES is refused with EINVAL
	// before it reaches the export.
	NoWriteZeroes bool
}

// Exports is the server's catalogue. Open is called once per connection
// that selects an export; the returned release is called when the
// connection ends. Open may refuse (an unknown name: ErrUnknownExport).
type Exports interface {
	List() []ExportInfo
	Info(name string) (ExportInfo, bool)
	Open(name string) (exp Export, release func(), err error)
}

// ErrUnknownExport is Open's answer for a name it does not serve.
var ErrUnknownExport = errors.New("nbdserver: unknown export")

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("nbdserver: server closed")

// SpliceReader is an optional Export capability for large reads: SpliceRead
// puts length bytes at off into pipe (the write end of a pipe(2), with room
// for them) without copying them through user space, and the server then
// splices the pipe into the socket. An export that cannot do it for a range
// returns an error wrapping ErrNoSplice, and the server reads it with
// ReadAt. After any error the pipe is discarded.
type SpliceReader interface {
	SpliceRead(ctx context.Context, pipe int, off, length int64) error
}

// SpliceWriter is an optional Export capability for large writes that an
// export forwards to another host (a table over a remote leg): the server
// moves the payload from its client's socket into a pipe with splice(2),
// never copying it into user space, and SpliceWriteAsync sends it on from
// there (see splicewrite.go). MaySpliceWrite says, cheaply, whether a
// write of n bytes at off would be taken now, before the server fills a
// pipe for it. SpliceWriteAsync then works as AsyncExport's WriteAsync,
// with the data's first inPipe bytes in pipe (its read end, holding
// exactly them) and the rest in tail (what did not fit the pipe's
// slots): reporting false it has done nothing; reporting true, done is
// called once, after which pipe and tail are the server's again, the pipe
// empty on success, perhaps holding part of its bytes after an error.
type SpliceWriter interface {
	MaySpliceWrite(off, n int64) bool
	SpliceWriteAsync(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64, done func(error)) bool
}

// PipeWriter is an optional Export capability for large writes to local
// files: the server moves the payload from its client's socket into a
// pipe with splice(2), as for a SpliceWriter, and WriteFromPipe splices
// it on into the file, so it is copied once (into the page cache), not
// twice (out of the socket, then into the file). MayWriteFromPipe says,
// cheaply, whether a write of n bytes at off would be taken now.
// WriteFromPipe writes the data's first inPipe bytes from pipe (its read
// end, holding exactly them), then tail, at off, and returns when done;
// an error wrapping ErrNoSplice means it took nothing from the pipe, and
// the server writes the payload with WriteAt. After any other error the
// pipe may hold part of its bytes, and is discarded. Whether this beats
// reading into memory differs by socket and machine; each connection's
// tuner decides (knobPipeWrite).
type PipeWriter interface {
	MayWriteFromPipe(off, n int64) bool
	WriteFromPipe(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64) error
}

// FUAWriter is an optional Export capability for writes with FUA:
// WriteAtFUA writes p at off and returns once that data is durable, made so
// by what the write reached (a sync of the files it touched) rather than by
// a flush of the whole export. Without it, a FUA write is WriteAt then
// Flush.
type FUAWriter interface {
	WriteAtFUA(ctx context.Context, p []byte, off int64) error
}

// Syncer is an optional Export capability: Sync makes completed writes
// durable on the server's own behalf (when a client disconnects, and at
// shutdown), where Flush serves a client's FLUSH request. An export whose
// FLUSH means more than durability (a log that records it, a fault
// injector that fails it) keeps the two apart. Without it, the server
// calls Flush.
type Syncer interface {
	Sync(ctx context.Context) error
}

// ErrNoSplice: the export did not splice this range; read it with ReadAt.
var ErrNoSplice = errors.New("nbdserver: range not spliced")
