package nbdclient

import (
	"fmt"
	"sync/atomic"
	"syscall"
)

// Writes a flush cannot cover. A write the server completed is durable
// only once a flush covers it; without CAN_MULTI_CONN, the spec says a
// flush covers only the writes completed on its own connection. So when
// a connection drops with writes completed on it that no flush on it
// covered, a flush on the new connection promises nothing about them:
// the server may have held them in a cache of that connection's, or
// crashed with them. Reporting that flush as a success would tell the
// caller (a file system's journal commit) that they are durable. The
// next Flush fails with ErrWritesLost instead, once, as a write-back
// error is reported once by fsync. Where one flush covers every
// connection's writes (CAN_MULTI_CONN), or the server has no cache to
// flush (no SEND_FLUSH), nothing is tracked. Retrying the writes is not
// possible: their data went back to their callers when they completed.

// ErrWritesLost is a flush after a connection dropped with writes no flush
// covered: they may be lost.
var ErrWritesLost = fmt.Errorf("nbdclient: writes done on a connection that dropped before a flush covered them may be lost: %w", syscall.EIO)

// lostFlag is what a connection to an export with info sets when it drops
// with writes no flush covered: the client's flag, or nil where a flush
// on another connection covers them (or none is needed).
func (cl *Client) lostFlag(info Info) *atomic.Bool {
	if info.Flags&FlagSendFlush == 0 || info.Flags&FlagCanMultiConn != 0 || info.Flags&FlagReadOnly != 0 {
		return nil
	}
	return &cl.lostWrites
}

// noteDoneLocked counts, for the flush accounting, a request of cl's the
// server answered with res: a write (but FUA, durable when done) or
// write-zeroes that a flush must cover, or a flush that covered those
// done before it was queued. A trim is advisory and not counted.
// Called with c.mu held.
func (c *conn) noteDoneLocked(cl *call, res result) {
	if res.err != nil || c.lost == nil {
		return
	}
	switch cl.req.typ {
	case cmdFlush:
		c.flushedUpTo = max(c.flushedUpTo, cl.flushMark)
	case cmdWrite:
		if cl.req.flags&cmdFlagFUA == 0 {
			c.writesDone++
		}
	case cmdWriteZeroes:
		c.writesDone++
	}
}
