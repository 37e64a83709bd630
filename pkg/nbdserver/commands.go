package nbdserver

import (
	"encoding/binary"
	"fmt"
	"syscall"
)

// The handlers of the transmission commands, one each. do calls them only
// with requests check has passed: in range, flags allowed, the export
// writable where they write.

// serveRead reads the range into the reply: spliced when the export can,
// else into a pooled buffer. With structured replies it is one chunk, so
// DF ("don't fragment") is always honoured.
func (c *conn) serveRead(r request, rep *reply) {
	off, n := int64(r.offset), int64(r.length)
	if spliced, err := c.spliceRead(rep, off, n); err != nil {
		c.errorReply(rep, r, replyCode(r, err))
		return
	} else if !spliced {
		buf := getBuf(int(n))
		if err := c.exp.ReadAt(c.ctx, *buf, off); err != nil {
			putBuf(buf)
			c.errorReply(rep, r, replyCode(r, err))
			return
		}
		rep.pooled = buf
		rep.data = *buf
	}
	c.readReplyHead(rep, r)
}

// readReplyHead writes the header of a successful read's reply, whose
// data is in rep.
func (c *conn) readReplyHead(rep *reply, r request) {
	n := int64(r.length)
	switch {
	case c.structured && n == 0:
		c.chunkHeader(rep, r.cookie, chunkFlagDone, chunkNone, 0)
	case c.structured:
		c.chunkHeader(rep, r.cookie, chunkFlagDone, chunkOffsetData, uint32(8+n))
		binary.BigEndian.PutUint64(rep.head[20:], r.offset)
		rep.headLen = 28
	default:
		c.simpleReply(rep, r.cookie, 0)
	}
}

// serveWrite writes the payload; with FUA, durably: through the export's
// own FUA write if it has one (FUAWriter), else a write and a flush.
func (c *conn) serveWrite(r request, payload []byte, rep *reply) {
	if r.flags&cmdFlagFUA != 0 {
		if fw, ok := c.exp.(FUAWriter); ok {
			c.simpleReply(rep, r.cookie, replyCode(r, fw.WriteAtFUA(c.ctx, payload, int64(r.offset))))
			return
		}
	}
	err := c.exp.WriteAt(c.ctx, payload, int64(r.offset))
	c.simpleReply(rep, r.cookie, replyCode(r, c.fua(r, err)))
}

// serveFlush flushes; a FUA flag on it adds nothing.
func (c *conn) serveFlush(r request, rep *reply) {
	c.simpleReply(rep, r.cookie, replyCode(r, c.exp.Flush(c.ctx)))
}

// serveTrim discards the range, then flushes if FUA asks for it.
func (c *conn) serveTrim(r request, rep *reply) {
	err := c.exp.Trim(c.ctx, int64(r.offset), int64(r.length))
	c.simpleReply(rep, r.cookie, replyCode(r, c.fua(r, err)))
}

// serveWriteZeroes zeroes the range as NO_HOLE and FAST_ZERO ask, then
// flushes if FUA asks for it.
func (c *conn) serveWriteZeroes(r request, rep *reply) {
	err := c.exp.Zero(c.ctx, int64(r.offset), int64(r.length), r.flags&cmdFlagNoHole != 0, r.flags&cmdFlagFastZero != 0)
	c.simpleReply(rep, r.cookie, replyCode(r, c.fua(r, err)))
}

// serveCache succeeds at once: CACHE is a hint, and the page cache
// already does what it asks.
func (c *conn) serveCache(r request, rep *reply) {
	c.simpleReply(rep, r.cookie, 0)
}

// fua flushes after a command that wrote without error, when the request
// has FUA set: its reply must wait until the data is durable.
func (c *conn) fua(r request, err error) error {
	if err == nil && r.flags&cmdFlagFUA != 0 {
		err = c.exp.Flush(c.ctx)
	}
	return err
}

// maxExtents bounds one block-status reply; the client asks again for more.
const maxExtents = 1024

// maxExtentWalk bounds the runs an export may report for one block-status
// request, merged or not. Runs of the same kind merge into one descriptor,
// so without it a request over a whole fully allocated device striped in
// small chunks walks every chunk (two lseeks each) for a one-descriptor
// answer: a cheap request making the server do unbounded work. proto.md
// lets a reply cover less of the range than asked when looking further
// would cost too much; the client asks again from where it ends.
const maxExtentWalk = 8 * maxExtents

// blockStatusBuf is the buffer a block-status reply's descriptors take, 8
// bytes each: one of the buffer pool's sizes, so what readOne charges for
// it (blockStatusCharge) is what the reply holds until it is written. The
// context ID goes in the reply's header rather than here: 4 bytes more
// would take the next size, 16 KiB.
const blockStatusBuf = 8 * maxExtents

// blockStatusCharge is the memory a block status with flags holds until
// its reply is written, charged to the in-flight bounds as a read's data
// is: the descriptor buffer, or nothing with REQ_ONE, whose descriptor
// goes in the reply's header. Uncharged, the replies a client leaves
// unread would pin 8 KiB each, beyond the bounds and the gauge.
func blockStatusCharge(flags uint16) int64 {
	if flags&cmdFlagReqOne != 0 {
		return 0
	}
	return blockStatusBuf
}

// serveBlockStatus answers with the allocation of the range, in at most
// maxExtents descriptors (one with REQ_ONE). A reply of one descriptor
// carries it in its header and gives its buffer back at once.
func (c *conn) serveBlockStatus(r request, rep *reply) {
	var desc *[]byte
	b, limit := rep.head[24:24:32], 1 // the header's room for one descriptor
	if r.flags&cmdFlagReqOne == 0 {
		desc = getBuf(blockStatusBuf)
		b, limit = (*desc)[:0], maxExtents
	}
	count, walked, left := 0, 0, int64(r.length)
	var last uint32
	err := c.exp.Extents(c.ctx, int64(r.offset), left, func(length int64, flags uint32) bool {
		if walked++; walked > maxExtentWalk {
			return false
		}
		// A run past the range is cut to it: the descriptors must not
		// reach beyond the request (REQ_ONE's, and all but the last's).
		length = min(length, left)
		left -= length
		for length > 0 {
			// Merge runs of the same kind; split runs past a u32.
			if count > 0 && flags == last && uint64(binary.BigEndian.Uint32(b[len(b)-8:]))+uint64(length) <= 0xffffffff {
				binary.BigEndian.PutUint32(b[len(b)-8:], binary.BigEndian.Uint32(b[len(b)-8:])+uint32(length))
				break
			}
			if count == limit {
				return false
			}
			piece := min(length, 0xffffffff&^511)
			b = binary.BigEndian.AppendUint32(b, uint32(piece))
			b = binary.BigEndian.AppendUint32(b, flags)
			count++
			last = flags
			length -= piece
		}
		return left > 0
	})
	if err == nil && count == 0 {
		err = fmt.Errorf("nbdserver: export reported no extents: %w", syscall.EIO)
	}
	if err != nil {
		if desc != nil {
			putBuf(desc)
		}
		c.errorReply(rep, r, replyCode(r, err))
		return
	}
	c.chunkHeader(rep, r.cookie, chunkFlagDone, chunkBlockStatus, uint32(4+len(b)))
	binary.BigEndian.PutUint32(rep.head[20:], metaAllocationID)
	rep.headLen = 24
	if count == 1 {
		copy(rep.head[24:], b) // a no-op when b is the header's room already
		rep.headLen = 32
		if desc != nil {
			putBuf(desc)
		}
		return
	}
	rep.pooled, rep.data = desc, b
}
