package nbdserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// errHandshake ends a negotiation; reason is a Handshake* constant.
type errHandshake struct {
	reason int
	err    error
}

func (e *errHandshake) Error() string {
	return fmt.Sprintf("nbdserver: handshake: %s: %v", HandshakeFailureNames[e.reason], e.err)
}
func (e *errHandshake) Unwrap() error { return e.err }

func failHandshake(reason int, err error) error { return &errHandshake{reason: reason, err: err} }

// option is one option the client sent.
type option struct {
	typ  uint32
	data []byte
}

// handshake runs newstyle negotiation until the client picks an export
// (EXPORT_NAME or GO), and leaves the connection ready for transmission.
//
// Both kinds of newstyle client are served. A fixed newstyle client may send
// any option and gets a reply to each but EXPORT_NAME. A plain (non-fixed)
// client, one that leaves NBD_FLAG_C_FIXED_NEWSTYLE clear (go-nbd's client,
// old nbd-client), has only EXPORT_NAME in its protocol; proto.md lets a
// server honour fixed newstyle from it anyway, and this one does for the
// options it implements: go-nbd's List sends LIST with client flags 0 and
// reads the reply, as the reference nbd-server gives it. What a plain client
// cannot be sent is NBD_REP_ERR_UNSUP, a reply its protocol does not have:
// an option this server does not know ends its session, as non-fixed
// newstyle servers always ended it (see readOption).
func (c *conn) handshake() error {
	var hello [18]byte
	binary.BigEndian.PutUint64(hello[0:], magicNBD)
	binary.BigEndian.PutUint64(hello[8:], magicOption)
	binary.BigEndian.PutUint16(hello[16:], flagFixedNewstyle|flagNoZeroes)
	if _, err := c.nc.Write(hello[:]); err != nil {
		return failHandshake(HandshakeIO, err)
	}
	var cf [4]byte
	if _, err := io.ReadFull(c.br, cf[:]); err != nil {
		return failHandshake(HandshakeIO, err)
	}
	clientFlags := binary.BigEndian.Uint32(cf[:])
	// proto.md: the server MUST drop the connection on a client flag it does
	// not know. Both known flags answer one the server advertised.
	if clientFlags&^(clientFixedNewstyle|clientNoZeroes) != 0 {
		return failHandshake(HandshakeBadFlags, fmt.Errorf("client flags %#x", clientFlags))
	}
	fixed := clientFlags&clientFixedNewstyle != 0
	c.noZeroes = clientFlags&clientNoZeroes != 0
	if !fixed && c.srv.TLSRequired {
		return failHandshake(HandshakeTLS, errors.New("TLS is required, and a client without fixed newstyle cannot start it"))
	}
	for {
		opt, err := c.readOption(fixed)
		if err != nil {
			return err
		}
		if opt == nil { // oversized, skipped and answered
			continue
		}
		if refused, err := c.needsTLS(opt); refused || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		done, err := c.handleOption(opt)
		if err != nil || done {
			return err
		}
	}
}

// readOption reads one option. Data past maxOptionLen is never held in
// memory: up to maxOptionSkip it is read and dropped and the option answered
// ERR_TOO_BIG (nil, nil); beyond, the connection is closed.
//
// From a plain newstyle client (fixed false), an option handleOption does not
// implement closes the connection before its data is read, with no reply: to
// such a client no option reply can mean "unsupported". It counts as
// bad_flags, the client's flags being what makes the option fatal.
func (c *conn) readOption(fixed bool) (*option, error) {
	var h [16]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return nil, failHandshake(HandshakeIO, err)
	}
	if m := binary.BigEndian.Uint64(h[0:]); m != magicOption {
		c.srv.stats.ProtocolErrors.Add(1)
		return nil, failHandshake(HandshakeBadMagic, fmt.Errorf("option magic %#x", m))
	}
	typ, n := binary.BigEndian.Uint32(h[8:]), binary.BigEndian.Uint32(h[12:])
	c.srv.stats.Options[min(typ, maxOptionStat)].Add(1)
	if !fixed && !implemented(typ) {
		return nil, failHandshake(HandshakeBadFlags, fmt.Errorf("option %d from a client without fixed newstyle", typ))
	}
	if n > maxOptionLen {
		if n > maxOptionSkip || typ == optExportName {
			return nil, failHandshake(HandshakeOversized, fmt.Errorf("option %d with %d bytes of data", typ, n))
		}
		if _, err := io.CopyN(io.Discard, c.br, int64(n)); err != nil {
			return nil, failHandshake(HandshakeIO, err)
		}
		if refused, err := c.needsTLS(&option{typ: typ}); refused { // before TLS, nothing else is said
			return nil, err
		}
		return nil, c.optReply(typ, repErrTooBig, []byte("option data too long"))
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(c.br, data); err != nil {
		return nil, failHandshake(HandshakeIO, err)
	}
	return &option{typ: typ, data: data}, nil
}

// optReply sends one option reply.
func (c *conn) optReply(opt, typ uint32, data []byte) error {
	return c.writeOptReplies(appendOptReply(make([]byte, 0, 20+len(data)), opt, typ, data))
}

// appendOptReply appends one option reply to buf.
func appendOptReply(buf []byte, opt, typ uint32, data []byte) []byte {
	buf = binary.BigEndian.AppendUint64(buf, magicOptReply)
	buf = binary.BigEndian.AppendUint32(buf, opt)
	buf = binary.BigEndian.AppendUint32(buf, typ)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(data)))
	return append(buf, data...)
}

// writeOptReplies sends option replies gathered in buf.
func (c *conn) writeOptReplies(buf []byte) error {
	if _, err := c.wire().Write(buf); err != nil {
		return failHandshake(HandshakeIO, err)
	}
	return nil
}

// optError sends an error reply with a message. A message is a string, no
// longer than maxString bytes (proto.md): one that quotes what the client
// sent (an export name of up to maxOptionLen bytes, which %q can make four
// times longer) is cut, at a character's start, to fit.
func (c *conn) optError(opt, typ uint32, format string, args ...any) error {
	msg := fmt.Appendf(nil, format, args...)
	if len(msg) > maxString {
		n := maxString
		for n > 0 && !utf8.RuneStart(msg[n]) {
			n--
		}
		msg = msg[:n]
	}
	return c.optReply(opt, typ, msg)
}

// implemented reports whether handleOption does what typ asks, rather than
// answering it NBD_REP_ERR_UNSUP: the options a plain newstyle client may
// send. STARTTLS is not among them: it needs fixed newstyle (proto.md), and
// is served only where TLS is configured. Keep the two in step.
func implemented(typ uint32) bool {
	switch typ {
	case optExportName, optAbort, optList, optInfo, optGo, optStructuredReply,
		optListMetaContext, optSetMetaContext:
		return true
	}
	return false
}

// handleOption answers one option; done means transmission starts now.
func (c *conn) handleOption(o *option) (done bool, err error) {
	switch o.typ {
	case optExportName:
		return true, c.exportName0(o)
	case optAbort:
		c.optReply(o.typ, repAck, nil) // the client may already be gone
		return false, failHandshake(HandshakeAborted, errors.New("client aborted"))
	case optList:
		if len(o.data) != 0 {
			return false, c.optError(o.typ, repErrInvalid, "LIST takes no data")
		}
		return false, c.listExports(o.typ)
	case optInfo, optGo:
		return c.infoGo(o)
	case optStructuredReply:
		if len(o.data) != 0 {
			return false, c.optError(o.typ, repErrInvalid, "STRUCTURED_REPLY takes no data")
		}
		c.structured = true
		return false, c.optReply(o.typ, repAck, nil)
	case optListMetaContext, optSetMetaContext:
		return false, c.metaContext(o)
	case optStartTLS:
		return false, c.startTLS(o)
	default:
		return false, c.optError(o.typ, repErrUnsup, "option %d not supported", o.typ)
	}
}

// resolve maps a requested name to an export: the empty name is the default
// export when the server has exactly one.
func (c *conn) resolve(name string) (ExportInfo, bool) {
	if name == "" {
		if l := c.srv.Exports.List(); len(l) == 1 {
			return l[0], true
		}
	}
	return c.srv.Exports.Info(name)
}

// exportName0 is the old EXPORT_NAME option: no way to report an error, so
// an unknown export closes the connection.
func (c *conn) exportName0(o *option) error {
	info, ok := c.resolve(string(o.data))
	if !ok {
		return failHandshake(HandshakeUnknownExport, fmt.Errorf("export %q", o.data))
	}
	if err := c.open(info); err != nil {
		return failHandshake(HandshakeUnknownExport, err)
	}
	buf := binary.BigEndian.AppendUint64(nil, uint64(c.size))
	buf = binary.BigEndian.AppendUint16(buf, c.flags)
	if !c.noZeroes {
		buf = append(buf, make([]byte, 124)...)
	}
	if _, err := c.wire().Write(buf); err != nil {
		return failHandshake(HandshakeIO, err)
	}
	return nil
}

// open selects the export for transmission. The server knows the
// connection is opening one from before Exports.Open until the export is
// recorded (beginOpen, publish), so that a Disconnect of it meanwhile
// cannot miss the connection: if one ran, the connection is ended here,
// having served nothing, and open returns errDisconnected.
func (c *conn) open(info ExportInfo) error {
	if c.metaExport != info.Name {
		// proto.md: contexts set for one export are not usable with
		// another; BLOCK_STATUS then needs a SET_META_CONTEXT for it.
		c.metaAllocation = false
	}
	c.srv.beginOpen(c)
	exp, release, err := c.srv.Exports.Open(info.Name)
	if err != nil {
		c.srv.publish(c, nil, "")
		return err
	}
	c.exp, c.release = exp, release
	if sr, ok := exp.(SpliceReader); ok && c.raw != nil {
		c.splicer = sr
	}
	if sw, ok := exp.(SpliceWriter); ok && c.raw != nil {
		c.writeSplicer = sw
	}
	if pw, ok := exp.(PipeWriter); ok && c.raw != nil {
		c.pipeWriter = pw
	}
	c.size = exp.Size()
	c.readOnly = info.ReadOnly
	c.flags = c.transmissionFlags(info)
	if !c.srv.publish(c, exp, info.Name) {
		c.kill()
		return errDisconnected
	}
	return nil
}

// transmissionFlags advertises exactly what the server implements.
func (c *conn) transmissionFlags(info ExportInfo) uint16 {
	f := tfHasFlags | tfSendFlush | tfCanMultiConn | tfSendCache
	if info.ReadOnly {
		f |= tfReadOnly
	} else {
		f |= tfSendFUA | tfSendTrim | tfSendWriteZeroes | tfSendFastZero
		if info.NoTrim {
			f &^= tfSendTrim
		}
		if info.NoWriteZeroes {
			f &^= tfSendWriteZeroes | tfSendFastZero
		}
	}
	if c.structured {
		f |= tfSendDF
	}
	return f
}
