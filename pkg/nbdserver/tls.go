package nbdserver

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"time"
)

// NBD over TLS (proto.md, "TLS support"): the client asks with
// NBD_OPT_STARTTLS, the server acknowledges, and both run a TLS handshake
// on the same socket; every later option and all of transmission go
// through TLS. The server offers it when Server.TLS is set, and with
// Server.TLSRequired answers nothing else before it (nbdkit's --tls=require,
// the spec's FORCEDTLS).

// tlsWriteBuffer gathers a batch of replies into TLS records: written
// piece by piece, each 16-byte reply header would be a record (and a
// syscall) of its own.
const tlsWriteBuffer = 64 << 10

// wire is where the handshake writes: the socket, or the TLS session over
// it once STARTTLS succeeded.
func (c *conn) wire() io.Writer {
	if c.secure != nil {
		return c.secure
	}
	return c.nc
}

// needsTLS answers an option that TLSRequired does not allow before TLS:
// NBD_REP_ERR_TLS_REQD, or for EXPORT_NAME, which has no error reply, the
// end of the connection. refused says the option was answered so.
func (c *conn) needsTLS(o *option) (refused bool, err error) {
	if !c.srv.TLSRequired || c.secure != nil || o.typ == optStartTLS || o.typ == optAbort {
		return false, nil
	}
	if o.typ == optExportName {
		return true, failHandshake(HandshakeTLS, errors.New("EXPORT_NAME before STARTTLS, where TLS is required"))
	}
	return true, c.optError(o.typ, repErrTLSReqd, "TLS is required: send STARTTLS first")
}

// startTLS answers STARTTLS and, when it is acknowledged, runs the TLS
// handshake (bounded by the handshake's deadline on the socket) and moves
// the connection's reads and writes onto the session. What the options
// negotiated before it is forgotten (forgetOptions).
func (c *conn) startTLS(o *option) error {
	switch {
	case c.srv.TLS == nil:
		return c.optError(o.typ, repErrUnsup, "TLS is not configured on this server")
	case c.secure != nil:
		return c.optError(o.typ, repErrInvalid, "TLS is already in use")
	case len(o.data) != 0:
		return c.optError(o.typ, repErrInvalid, "STARTTLS takes no data")
	}
	if err := c.optReply(o.typ, repAck, nil); err != nil {
		return err
	}
	// Bytes that came before the TLS handshake would otherwise be read as
	// if they had come through it: a man in the middle's injected options.
	if c.br.Buffered() != 0 {
		return failHandshake(HandshakeTLS, errors.New("data sent between STARTTLS and the TLS handshake"))
	}
	tc := tls.Server(c.nc, c.srv.TLS)
	if err := tc.HandshakeContext(c.ctx); err != nil {
		return failHandshake(HandshakeTLS, err)
	}
	c.secure = tc
	c.forgetOptions()
	c.br.src = tc
	c.raw = nil // no splicing or spinning on the socket under TLS
	c.writer.nc, c.writer.raw = tc, nil
	c.writer.gather = bufio.NewWriterSize(tc, tlsWriteBuffer)
	c.srv.stats.TLSSessions.Add(1)
	c.log = c.log.With("tls", tls.VersionName(tc.ConnectionState().Version))
	return nil
}

// forgetOptions drops what options negotiated in the clear, once TLS is
// up: structured replies and the meta context (proto.md: after STARTTLS
// the client "MUST renegotiate structured replies and any other dependent
// extensions", and BLOCK_STATUS needs a SET_META_CONTEXT "with no
// intervening NBD_OPT_STARTTLS"). Anything before TLS may have been
// injected by a man in the middle; a client that negotiates nothing
// inside TLS gets simple replies and no BLOCK_STATUS. The export is not
// among them: only GO and EXPORT_NAME open it, and they end the options.
// The client's flags (noZeroes) are the greeting's, not an option, and
// stay. Keep this in step with the options that set state (handleOption).
func (c *conn) forgetOptions() {
	c.structured = false
	c.metaAllocation = false
}

// closeTLS ends the TLS session, if one is up, with a close_notify alert
// when soft is set: the client ended the session itself (DISC, ABORT), and
// proto.md has the server then "close down the TLS session (if one is
// running) and then close the TCP connection". serve closes the socket
// after it; the other ends (errors, timeouts, a kill) only close the
// socket. The alert's write is bounded (crypto/tls gives it 5 seconds).
func (c *conn) closeTLS(soft bool) {
	if soft && c.secure != nil && !c.killed.Load() {
		if err := c.secure.CloseWrite(); err != nil {
			c.log.Debug("TLS close_notify", "err", err)
		}
	}
}

// longAgo is a read deadline that has passed: a read under it takes only
// what is there already.
var longAgo = time.Unix(1, 0)

// readMoreNow, under TLS, reads the next request's header if the session
// can give it without waiting, so that the reading turn's batch can grow.
// A TLS session hands out one record per read, so the batch would
// otherwise end after each request, even with the next ones read off the
// socket already (in the session's buffer), and each reply would go out
// as a TLS record and a write of its own.
func (c *conn) readMoreNow() bool {
	if c.secure == nil || c.stopped.Load() {
		return false
	}
	c.nc.SetReadDeadline(longAgo)
	c.br.fill(requestHeaderSize)
	c.setReadDeadline(time.Time{})
	if errors.Is(c.br.err, os.ErrDeadlineExceeded) {
		c.br.err = nil
	}
	return c.br.Buffered() >= requestHeaderSize
}
