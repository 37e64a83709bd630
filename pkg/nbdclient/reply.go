package nbdclient

import (
	"encoding/binary"
	"fmt"
	"io"
)

// readLoop reads replies until the connection fails, handing each to its
// call. Every length a reply claims is checked against its request before
// anything is read or allocated: a server cannot make the client write past
// a buffer or hold more than one bounded chunk.
func (c *conn) readLoop() {
	defer c.releaseHeld()
	var h [chunkHeaderSize]byte
	for {
		if err := c.readReply(h[:]); err != nil {
			c.kill(err)
			return
		}
	}
}

func (c *conn) lookup(cookie uint64) (*call, error) {
	c.mu.Lock()
	cl := c.pending[cookie]
	c.mu.Unlock()
	if cl == nil || cl.replied {
		return nil, protoErr("reply for unknown cookie %d", cookie)
	}
	c.splicedLast = cl.pipe >= 0
	return cl, nil
}

func (c *conn) readReply(h []byte) error {
	if err := c.readHead(h[:simpleReplySize]); err != nil {
		return fmt.Errorf("nbdclient: read reply: %w", err)
	}
	switch binary.BigEndian.Uint32(h) {
	case magicSimple:
		return c.simpleReply(binary.BigEndian.Uint32(h[4:]), binary.BigEndian.Uint64(h[8:]))
	case magicStructure:
		if !c.info.Structured {
			return protoErr("structured reply not negotiated")
		}
		if err := c.readHead(h[simpleReplySize:chunkHeaderSize]); err != nil {
			return fmt.Errorf("nbdclient: read reply: %w", err)
		}
		return c.chunk(binary.BigEndian.Uint16(h[4:]), binary.BigEndian.Uint16(h[6:]),
			binary.BigEndian.Uint64(h[8:]), binary.BigEndian.Uint32(h[16:]))
	}
	return protoErr("bad reply magic %#x", binary.BigEndian.Uint32(h))
}

// simpleReply finishes a call; a successful read's data follows it (only
// without structured replies, which forbid simple replies to reads).
func (c *conn) simpleReply(code uint32, cookie uint64) error {
	cl, err := c.lookup(cookie)
	if err != nil {
		return err
	}
	if cl.covered != 0 || cl.firstE != nil || cl.extents != nil {
		return protoErr("simple reply after chunks for cookie %d", cookie)
	}
	if code != 0 {
		return c.finish(cl, result{err: &RemoteError{Errno: errnoOf(code)}})
	}
	if cl.req.typ == cmdRead {
		if c.info.Structured {
			return protoErr("simple reply to a read")
		}
		if err := c.fill(cl, 0, int64(cl.req.length)); err != nil {
			return err
		}
	}
	return c.finish(cl, result{})
}

// fill reads n bytes of payload into the call's buffer at off (checked by
// the caller), or drops them if the waiter gave up on the call.
func (c *conn) fill(cl *call, off, n int64) error {
	cl.bufMu.Lock()
	defer cl.bufMu.Unlock()
	var err error
	switch {
	case cl.abandoned:
		_, err = io.CopyN(io.Discard, c.r, n)
	case cl.pipe >= 0:
		return c.spliceFill(cl, off, n)
	default:
		_, err = io.ReadFull(c.r, cl.buf[off:off+n])
	}
	if err != nil {
		return fmt.Errorf("nbdclient: read payload: %w", err)
	}
	cl.covered += n
	return nil
}

// chunk handles one structured reply chunk.
func (c *conn) chunk(flags, typ uint16, cookie uint64, length uint32) error {
	cl, err := c.lookup(cookie)
	if err != nil {
		return err
	}
	switch {
	case typ == chunkNone:
		if length != 0 || flags&chunkFlagDone == 0 {
			return protoErr("bad NBD_REPLY_TYPE_NONE")
		}
	case typ == chunkOffsetData || typ == chunkOffsetHole:
		err = c.readChunk(cl, typ, length)
	case typ == chunkBlockStatus:
		err = c.statusChunk(cl, length)
	case typ&chunkErrBit != 0:
		err = c.errorChunk(cl, typ, length)
	default:
		return protoErr("unknown reply chunk type %d", typ)
	}
	if err != nil {
		return err
	}
	if flags&chunkFlagDone != 0 {
		return c.done(cl)
	}
	return nil
}

// done finishes a call on its last chunk: a read must have been covered
// exactly, unless an error chunk came.
func (c *conn) done(cl *call) error {
	if cl.firstE != nil {
		return c.finish(cl, result{err: cl.firstE})
	}
	if cl.spliceErr != nil {
		return c.finish(cl, result{err: cl.spliceErr})
	}
	if cl.req.typ == cmdRead && cl.covered != int64(cl.req.length) {
		return protoErr("read of %d bytes answered with %d", cl.req.length, cl.covered)
	}
	return c.finish(cl, result{extents: cl.extents})
}

// readChunk takes an OFFSET_DATA or OFFSET_HOLE chunk of a read. With DF
// (sent whenever the server offers it) the whole read comes in one chunk;
// without, chunks may come in any order, and one that overlaps another
// is refused (claim): done's count of the bytes covered then means that
// every byte of the buffer was written.
func (c *conn) readChunk(cl *call, typ uint16, length uint32) error {
	if cl.req.typ != cmdRead || length < 8 {
		return protoErr("read chunk for command %d, %d bytes", cl.req.typ, length)
	}
	var b [12]byte
	head := b[:8]
	if typ == chunkOffsetHole {
		if length != 12 {
			return protoErr("hole chunk of %d bytes", length)
		}
		head = b[:12]
	}
	if err := c.readHead(head); err != nil {
		return fmt.Errorf("nbdclient: read chunk: %w", err)
	}
	n := int64(length) - 8
	if typ == chunkOffsetHole {
		n = int64(binary.BigEndian.Uint32(b[8:]))
	}
	off := int64(binary.BigEndian.Uint64(b[:])) - int64(cl.req.offset)
	if off < 0 || n == 0 || off > int64(cl.req.length) || n > int64(cl.req.length)-off ||
		cl.covered+n > int64(cl.req.length) {
		return protoErr("read chunk [%d,+%d) outside the request", off, n)
	}
	if cl.req.flags&cmdFlagDF != 0 && cl.covered != 0 {
		return protoErr("second read chunk despite DF")
	}
	if err := cl.claim(off, n); err != nil {
		return err
	}
	if typ == chunkOffsetData {
		return c.fill(cl, off, n)
	}
	cl.bufMu.Lock()
	defer cl.bufMu.Unlock()
	switch {
	case cl.abandoned:
	case cl.pipe >= 0:
		c.spliceZeros(cl, off, n)
	default:
		clear(cl.buf[off : off+n])
	}
	cl.covered += n
	return nil
}

// statusChunk takes a BLOCK_STATUS chunk: the base:allocation extents.
// The spec lets a server send up to 2^20 extents in one chunk (nbdkit
// does, for a fragmented export), so the chunk is read extent by extent
// rather than whole: at most maxKeptExtents of those inside the request
// are kept, the rest read and dropped, and Extents asks again from where
// the kept ones end. Only one chunk per context.
func (c *conn) statusChunk(cl *call, length uint32) error {
	if cl.req.typ != cmdBlockStatus || length < 12 || length > maxStatusChunk || (length-4)%8 != 0 {
		return protoErr("block status chunk of %d bytes for command %d", length, cl.req.typ)
	}
	var b [8]byte
	if _, err := io.ReadFull(c.r, b[:4]); err != nil {
		return fmt.Errorf("nbdclient: read block status: %w", err)
	}
	if !c.info.HasAllocation || binary.BigEndian.Uint32(b[:]) != c.info.AllocationID {
		return protoErr("block status for unknown context %d", binary.BigEndian.Uint32(b[:]))
	}
	if cl.extents != nil {
		return protoErr("second block status chunk")
	}
	left, count := int64(cl.req.length), (length-4)/8
	cl.extents = make([]Extent, 0, min(count, maxKeptExtents))
	for range count {
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return fmt.Errorf("nbdclient: read block status: %w", err)
		}
		n := int64(binary.BigEndian.Uint32(b[:]))
		if n == 0 {
			return protoErr("empty extent")
		}
		if left > 0 && len(cl.extents) < maxKeptExtents {
			n = min(n, left)
			cl.extents = append(cl.extents, Extent{Length: n, Flags: binary.BigEndian.Uint32(b[4:])})
			left -= n
		}
	}
	return nil
}

// errorChunk takes an error chunk (any type with the error bit: unknown
// ones are errors too); the first one is the call's error.
func (c *conn) errorChunk(cl *call, typ uint16, length uint32) error {
	if length < 6 || length > maxErrorChunk {
		return protoErr("error chunk of %d bytes", length)
	}
	b := make([]byte, length)
	if _, err := io.ReadFull(c.r, b); err != nil {
		return fmt.Errorf("nbdclient: read error chunk: %w", err)
	}
	code := binary.BigEndian.Uint32(b)
	msgLen := int(binary.BigEndian.Uint16(b[4:]))
	if code == 0 || msgLen > len(b)-6 {
		return protoErr("bad error chunk")
	}
	if typ == chunkErrorOffset {
		if len(b) != 6+msgLen+8 {
			return protoErr("bad error offset chunk")
		}
		// The spec: the offset "MUST lie within the original offset and
		// length of the request". One outside it is a server that mixed
		// up its requests; nothing it says on this connection can be
		// trusted after that.
		if off := binary.BigEndian.Uint64(b[6+msgLen:]); off-cl.req.offset >= uint64(cl.req.length) {
			return protoErr("error offset %d outside the request's %d bytes at %d", off, cl.req.length, cl.req.offset)
		}
	}
	if cl.firstE == nil {
		cl.firstE = &RemoteError{Errno: errnoOf(code), Message: printable(b[6 : 6+msgLen])}
	}
	return nil
}
