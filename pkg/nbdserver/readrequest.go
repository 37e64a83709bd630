package nbdserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Reading one request: its header, its place in the budget, its payload.
// All of it runs with rmu held, by the worker whose reading turn it is.

// readOne reads the next request and its payload. It returns false when
// reading must end: DISC, EOF, shutdown, or a protocol error (readDone is
// then set). With wait false it returns false, consuming nothing, rather
// than wait for the in-flight budget. With take, a write's payload up to
// maxTake stays in the read buffer. Called with rmu held.
func (c *conn) readOne(wait, take bool) (work, bool) {
	r, ok := c.peekRequest()
	if !ok {
		return c.endReading()
	}
	charge := requestCharge(r)
	if r.typ != cmdDisc {
		if wait {
			if !c.budget.acquire(charge) {
				return c.endReading()
			}
		} else if !c.budget.tryAcquire(charge) {
			return work{}, false
		}
	}
	c.br.Discard(requestHeaderSize)
	// After a large write, expect another: read its header alone (see
	// inbuf.lean).
	c.br.lean = r.typ == cmdWrite && r.length > maxTake
	if r.typ == cmdDisc {
		c.sawDisc = true
		return c.endReading()
	}
	w := work{r: r, charge: charge}
	if r.typ == cmdWrite {
		if r.length > MaxBlockSize {
			ok = c.skipPayload(r)
		} else {
			ok = c.readPayload(&w, take)
		}
		if !ok {
			return c.endReading()
		}
	}
	c.inflight.Add(1)
	return w, true
}

// requestCharge is what r holds until its reply is written, taken from the
// in-flight bounds when it is read and given back then (or when it is
// dropped): a read's or write's data, a block status's descriptors. A
// write too long to take is skipped, and holds nothing.
func requestCharge(r request) int64 {
	switch {
	case (r.typ == cmdRead || r.typ == cmdWrite) && r.length <= MaxBlockSize:
		return int64(r.length)
	case r.typ == cmdBlockStatus:
		return blockStatusCharge(r.flags)
	}
	return 0
}

// peekRequest decodes the next request's header, leaving it in the read
// buffer. It returns false when reading must end: the socket failed or
// closed (readErr is set), or the header is not a request's.
func (c *conn) peekRequest() (request, bool) {
	h, err := c.br.Peek(requestHeaderSize)
	if err != nil {
		c.readErr = err
		if !c.stopped.Load() && !c.killed.Load() && !errors.Is(err, io.EOF) {
			c.log.Debug("read request", "err", err)
		}
		return request{}, false
	}
	if m := binary.BigEndian.Uint32(h[0:]); m != magicRequest {
		c.srv.stats.ProtocolErrors.Add(1)
		c.log.Warn("bad request magic; closing", "magic", fmt.Sprintf("%#x", m))
		return request{}, false
	}
	return request{
		flags:  binary.BigEndian.Uint16(h[4:]),
		typ:    binary.BigEndian.Uint16(h[6:]),
		cookie: binary.BigEndian.Uint64(h[8:]),
		offset: binary.BigEndian.Uint64(h[16:]),
		length: binary.BigEndian.Uint32(h[24:]),
	}, true
}

// skipPayload drops the payload of a write too long to take, which check
// then answers EINVAL, if that is cheap enough; else the next request
// cannot be found safely, and it returns false: reading must end. Either
// way, when it returns false the request's place in the budget is given
// back.
//
// The skip runs under PayloadTimeout as readPayload does: the idle
// deadline is already cleared here, so without it a client that sends
// such a header and withholds the payload would hold the connection (and
// its place in the budget) forever.
func (c *conn) skipPayload(r request) bool {
	if r.length > maxPayloadSkip {
		c.srv.stats.ProtocolErrors.Add(1)
		c.log.Warn("write payload too long to skip; closing", "length", r.length)
		c.budget.release(0)
		return false
	}
	slow := c.armPayload(r.length)
	_, err := io.CopyN(io.Discard, c.br, int64(r.length))
	c.disarmPayload(slow, err, r.length)
	if err != nil {
		c.budget.release(0)
		return false
	}
	return true
}

// readPayload reads w's write payload into w: with take, one up to maxTake
// is left in the read buffer, unless the buffer has too many chunks held
// by such payloads already (MayTake). It returns false, having given back the
// payload's memory and budget, when the payload did not arrive: reading
// must end.
//
// The payload holds its bytes of both budgets while it arrives: a client
// that sends a header and then trickles or withholds the payload is
// dropped after PayloadTimeout, or a few could hold the shared bound and
// stall every client.
func (c *conn) readPayload(w *work, take bool) bool {
	n := w.r.length
	var err error
	slow := c.armPayload(n)
	var piped bool
	if c.spliceWritable(w.r) {
		piped, err = c.readPayloadPipe(w)
	}
	switch {
	case piped || err != nil:
	case take && n <= maxTake && c.br.MayTake():
		w.payload, w.pinned, err = c.br.Take(int(n))
	default:
		w.pooled = getBuf(int(n))
		w.payload = *w.pooled
		_, err = io.ReadFull(c.br, w.payload)
	}
	c.disarmPayload(slow, err, n)
	if err != nil {
		w.done()
		c.budget.release(w.charge)
		return false
	}
	return true
}

// armPayload sets the PayloadTimeout deadline for a payload of n bytes,
// unless it is all buffered already (no read can then wait); it reports
// whether it set one, for disarmPayload. Every read of a write's payload,
// kept or skipped, goes between the two.
func (c *conn) armPayload(n uint32) (slow bool) {
	slow = c.srv.PayloadTimeout > 0 && c.br.Buffered() < int(n)
	if slow {
		c.setReadDeadline(time.Now().Add(c.srv.PayloadTimeout))
	}
	return slow
}

// disarmPayload clears the deadline armPayload set, and counts and logs
// a payload the deadline cut short (err, the read's): its caller then
// ends reading, which closes the connection.
func (c *conn) disarmPayload(slow bool, err error, n uint32) {
	if !slow {
		return
	}
	c.setReadDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) && !c.stopped.Load() {
		c.srv.stats.PayloadTimeouts.Add(1)
		c.log.Info("write payload did not arrive; closing", "payload_timeout", c.srv.PayloadTimeout, "length", n)
	}
}
