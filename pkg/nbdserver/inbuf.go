package nbdserver

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

const (
	// inbufSize is the size of a connection's read buffer.
	inbufSize = 256 << 10
	// maxTake is the largest write payload left in the read buffer
	// rather than copied out. Larger ones are mostly read straight from
	// the socket into their own buffer, which is one copy already.
	maxTake = 64 << 10
	// maxStranded bounds the chunks a connection has moved on from that
	// pins still hold (Take's payloads, of requests not done yet). A pin
	// is charged to the budgets only for its payload's bytes, yet holds a
	// whole chunk: a client whose small writes wait (a suspended device, a
	// hung backend) and who sends a chunk's worth of cheap requests after
	// each would otherwise hold a chunk for every few bytes charged. Past
	// the bound, payloads are copied out (MayTake). Two, not zero: a
	// connection moves on from a chunk while its last batch's writes are
	// still being done, every time the chunk fills.
	maxStranded = 2
	// directMin is the smallest Read that goes straight from the socket
	// into the caller's slice when the buffer is empty. Going through the
	// buffer costs a copy; going around it costs the chance of picking up
	// the next request in the same read, which matters for small reads
	// only.
	directMin = 32 << 10
)

// inbuf is a connection's buffered reader: bufio.Reader's Peek, Discard,
// Buffered and Read, plus Take, which hands out a write payload as a slice
// of the buffer itself instead of copying it out.
//
// Why: a 4 KiB write otherwise crosses memory three times (socket to
// buffer, buffer to payload, payload to page cache); Take saves the middle
// copy and a pool round trip per request.
//
// A slice handed out by Take pins its chunk of buffer: while any pin is
// held, filling never slides or overwrites that chunk; it moves the unread
// bytes to a fresh chunk instead. So a payload stays intact whatever the
// reader does next: another worker reading on, or a stalled request
// rescued while its batch-mates' payloads are still in the old chunk.
// Only the goroutine holding the reading turn calls inbuf's methods;
// unpinning may come from any goroutine.
type inbuf struct {
	// All fields belong to the goroutine holding the reading turn (serve's
	// during the handshake); src is replaced once by transmit, before the
	// first worker starts.
	src  io.Reader
	cur  *inchunk
	r, w int // unread bytes are cur.b[r:w]
	err  error
	// lean makes a fill read only the bytes asked for, not as many as the
	// buffer holds. The connection sets it while large write payloads
	// follow their headers: a full fill would read the start of the next
	// payload into the buffer, only to copy it out again (up to a quarter
	// of a 1 MiB payload).
	lean bool
	// stranded counts the chunks this buffer moved on from while pins
	// still held them (maxStranded); the unpin that frees one counts it
	// off, from any goroutine.
	stranded atomic.Int32
}

// inchunk is one read buffer. The inbuf holds one pin on its current chunk;
// whoever drops the last pin returns the chunk to the pool.
type inchunk struct {
	b    []byte
	pins atomic.Int32
	// stranded is the counter of the buffer that moved on from this chunk
	// while pins held it, for the last unpin to count the chunk off; nil
	// while the chunk is a buffer's current one. Set before the buffer's
	// own unpin, read after the last: ordered by pins.
	stranded *atomic.Int32
}

var inchunks = sync.Pool{New: func() any { return &inchunk{b: make([]byte, inbufSize)} }}

func newChunk() *inchunk {
	ch := inchunks.Get().(*inchunk)
	ch.pins.Store(1)
	return ch
}

// unpin drops one pin on the chunk.
func (ch *inchunk) unpin() {
	if ch.pins.Add(-1) == 0 {
		if ch.stranded != nil {
			ch.stranded.Add(-1)
			ch.stranded = nil
		}
		inchunks.Put(ch)
	}
}

func newInbuf(src io.Reader) *inbuf {
	return &inbuf{src: src, cur: newChunk()}
}

// release gives up the buffer; the inbuf must not be used afterwards.
func (b *inbuf) release() {
	if b.cur != nil {
		b.cur.unpin()
		b.cur = nil
	}
}

// Buffered is how many bytes can be had without reading the source.
func (b *inbuf) Buffered() int { return b.w - b.r }

// fill reads once from the source into the free space after the unread
// bytes, first making room for need unread bytes in a row if the space
// there is short: by moving the unread bytes to the front in place if no one
// else holds the chunk, else into a fresh chunk. Pinned slices lie before
// the unread bytes, so reading into the tail never touches them.
func (b *inbuf) fill(need int) {
	size, short := len(b.cur.b), len(b.cur.b)-b.r < need || b.w == len(b.cur.b)
	switch {
	case b.cur.pins.Load() == 1:
		// Ours alone: move the unread bytes (usually a partial request)
		// to the front before the free space gets small.
		if short || size-b.w < size/4 {
			b.w = copy(b.cur.b, b.cur.b[b.r:b.w])
			b.r = 0
		}
	case short:
		next := newChunk()
		b.w = copy(next.b, b.cur.b[b.r:b.w])
		b.r = 0
		b.stranded.Add(1) // counted off by the last unpin, maybe the next line's
		b.cur.stranded = &b.stranded
		b.cur.unpin()
		b.cur = next
	}
	end := len(b.cur.b)
	if b.lean {
		end = b.r + need
	}
	for range 100 {
		n, err := b.src.Read(b.cur.b[b.w:end])
		if n < 0 || n > end-b.w {
			b.err = badCount(n, end-b.w, err)
			return
		}
		b.w += n
		if err != nil {
			b.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	b.err = io.ErrNoProgress
}

// errBadCount is a source's Read returning a count outside [0, len(p)].
var errBadCount = errors.New("nbdserver: read returned an impossible count")

// badCount is the error for a Read into room bytes that returned n: the
// count is never added to the buffer's indices (a -1 from a failed read(2)
// once was, and crashed the daemon on a connection reset). It wraps
// io.ErrShortBuffer as well, the io package's word for a count that does
// not fit, and the Read's own error if it had one.
func badCount(n, room int, err error) error {
	if err != nil {
		return fmt.Errorf("%w (%d into %d): %w: %w", errBadCount, n, room, io.ErrShortBuffer, err)
	}
	return fmt.Errorf("%w (%d into %d): %w", errBadCount, n, room, io.ErrShortBuffer)
}

// readErr returns and clears the pending read error.
func (b *inbuf) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// fillTo reads until n bytes are buffered or reading fails, and reports
// which: the error stays pending for the next Peek or Read. n must not
// exceed inbufSize.
func (b *inbuf) fillTo(n int) bool {
	for b.w-b.r < n && b.err == nil {
		b.fill(n)
	}
	return b.w-b.r >= n
}

// Peek returns the next n bytes without consuming them, reading as needed.
// The slice is valid until the next call that reads. n must not exceed
// inbufSize.
func (b *inbuf) Peek(n int) ([]byte, error) {
	b.fillTo(n)
	if b.w-b.r < n {
		return b.cur.b[b.r:b.w], b.readErr()
	}
	return b.cur.b[b.r : b.r+n], nil
}

// Discard consumes n buffered bytes; n must not exceed Buffered.
func (b *inbuf) Discard(n int) {
	b.r += n
}

// MayTake says whether Take may pin the current chunk: not while
// maxStranded chunks this buffer moved on from are still pinned.
func (b *inbuf) MayTake() bool { return b.stranded.Load() < maxStranded }

// Take consumes the next n bytes and returns them as a slice of the buffer
// that stays valid until the returned chunk is unpinned. n must not exceed
// inbufSize.
func (b *inbuf) Take(n int) ([]byte, *inchunk, error) {
	p, err := b.Peek(n)
	if err != nil {
		return nil, nil, err
	}
	ch := b.cur
	ch.pins.Add(1)
	b.r += n
	return p[:n:n], ch, nil
}

// Read reads into p: from the buffer when it holds anything, else straight
// from the source when p is large (directMin), else through one fill.
func (b *inbuf) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		if len(p) >= directMin {
			n, err := b.src.Read(p)
			if n < 0 || n > len(p) {
				return 0, badCount(n, len(p), err)
			}
			return n, err
		}
		b.fill(len(p))
		if b.r == b.w {
			return 0, b.readErr()
		}
	}
	n := copy(p, b.cur.b[b.r:b.w])
	b.r += n
	return n, nil
}
