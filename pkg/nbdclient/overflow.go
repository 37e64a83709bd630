package nbdclient

import (
	"errors"
	"syscall"
)

// DF and EOVERFLOW. The client asks for every read to come in one chunk
// (NBD_CMD_FLAG_DF, where the server offers it): no reassembly, and a
// spliced read needs its data in order. But the spec lets a server
// refuse a DF read that it would have to fragment with NBD_EOVERFLOW
// (only reads up to 64 KiB must be served unfragmented), and nbd-server
// does for reads over 1 MiB. Such a read is sent again without DF and its
// chunks put together (a spliced one is left to its caller's ordinary
// read: ErrNoSplice); and reads that long go without DF from then on, so
// that each costs one round trip. The bound halves at each refusal, down
// to the 64 KiB the spec guarantees.

// dfGuaranteed is the longest read a server must serve unfragmented.
const dfGuaranteed = 64 << 10

// readFlags are a read's flags of n bytes: DF where the server offers it
// and has not refused one as long.
func (cl *Client) readFlags(n int64) uint16 {
	if cl.info.Structured && cl.info.Flags&FlagSendDF != 0 && n <= cl.dfMax.Load() {
		return cmdFlagDF
	}
	return 0
}

// noteOverflow takes in a DF read of n bytes refused with EOVERFLOW:
// reads longer than half of it, but at least dfGuaranteed, go without DF.
func (cl *Client) noteOverflow(n int64) {
	limit := max(n/2, dfGuaranteed)
	for {
		old := cl.dfMax.Load()
		if old <= limit || cl.dfMax.CompareAndSwap(old, limit) {
			return
		}
	}
}

// overflowed says whether err is a server's EOVERFLOW to req, a read with
// DF.
func overflowed(req request, err error) bool {
	if err == nil || req.flags&cmdFlagDF == 0 {
		return false // before re, which escapes: no allocation per call
	}
	var re *RemoteError
	return errors.As(err, &re) && re.Errno == syscall.EOVERFLOW
}

// readWithoutDF sends an asynchronous read refused with EOVERFLOW again
// without DF, waiting for its reply on this goroutine (not the reader's),
// and calls its done.
func (cl *Client) readWithoutDF(call *call) {
	req := call.req
	req.cookie, req.flags = 0, req.flags&^cmdFlagDF
	call.async(cl.attempt(call.ctx, call.deadline, req, nil, call.buf, -1).err)
}
