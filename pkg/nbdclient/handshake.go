package nbdclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// Info is what the handshake learned about the export.
type Info struct {
	Size  int64
	Flags uint16 // transmission flags (Flag*)
	// Block sizes from NBD_INFO_BLOCK_SIZE; zero when the server sent none.
	MinBlock, PreferredBlock, MaxBlock uint32
	// Structured: structured replies were negotiated.
	Structured bool
	// AllocationID is base:allocation's context id; HasAllocation says
	// whether the server agreed to it.
	AllocationID  uint32
	HasAllocation bool
}

// ErrProtocol is a server that broke the protocol: the connection is
// dropped.
var ErrProtocol = errors.New("nbdclient: protocol error")

// ErrUnsupported is a server that cannot serve what the client needs (no
// fixed newstyle, no NBD_OPT_GO).
var ErrUnsupported = errors.New("nbdclient: server unsupported")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// handshake negotiates fixed newstyle on c: structured replies, the
// base:allocation context, then NBD_OPT_GO for the export with the INFO
// requests for its size, flags and block sizes. A server refusing the
// optional parts is fine; one without fixed newstyle or OPT_GO is not
// (OPT_EXPORT_NAME cannot report a missing export without dropping us).
// With tlsCfg, the options after the flags go over TLS (NBD_OPT_STARTTLS),
// and the returned connection and reader are the TLS ones.
func handshake(ctx context.Context, c net.Conn, r *bufio.Reader, export string, tlsCfg *tls.Config) (net.Conn, *bufio.Reader, Info, error) {
	info, err := greet(c, r)
	if err != nil {
		return nil, nil, info, err
	}
	if tlsCfg != nil {
		if c, r, err = startTLS(ctx, c, r, tlsCfg); err != nil {
			return nil, nil, info, err
		}
	}
	info, err = negotiate(c, r, export, info)
	if err != nil {
		return nil, nil, info, hintClientCert(err, tlsCfg)
	}
	return c, r, info, nil
}

// negotiate asks for structured replies and base:allocation, then goes to
// the export.
func negotiate(c net.Conn, r *bufio.Reader, export string, info Info) (Info, error) {
	o := optConn{w: c, r: r}
	ok, err := o.simple(optStructuredReply, nil)
	if err != nil {
		return info, err
	}
	info.Structured = ok
	if ok {
		if err := o.setMeta(export, &info); err != nil {
			return info, err
		}
	}
	return info, o.goExport(export, &info)
}

// greet reads the server's greeting and answers with the client flags.
func greet(c net.Conn, r *bufio.Reader) (Info, error) {
	var info Info
	var hello [18]byte
	if _, err := io.ReadFull(r, hello[:]); err != nil {
		return info, fmt.Errorf("nbdclient: read greeting: %w", err)
	}
	if binary.BigEndian.Uint64(hello[0:]) != magicNBD || binary.BigEndian.Uint64(hello[8:]) != magicOption {
		return info, fmt.Errorf("%w: not a newstyle NBD server", ErrUnsupported)
	}
	hs := binary.BigEndian.Uint16(hello[16:])
	if hs&hsFixedNewstyle == 0 {
		return info, fmt.Errorf("%w: no fixed newstyle", ErrUnsupported)
	}
	var cf [4]byte
	binary.BigEndian.PutUint32(cf[:], uint32(hs&(hsFixedNewstyle|hsNoZeroes)))
	if _, err := c.Write(cf[:]); err != nil {
		return info, fmt.Errorf("nbdclient: write flags: %w", err)
	}
	return info, nil
}

// optConn sends options and reads their replies.
type optConn struct {
	w io.Writer
	r io.Reader
}

func (o *optConn) send(opt uint32, data []byte) error {
	b := make([]byte, 16+len(data))
	binary.BigEndian.PutUint64(b[0:], magicOption)
	binary.BigEndian.PutUint32(b[8:], opt)
	binary.BigEndian.PutUint32(b[12:], uint32(len(data)))
	copy(b[16:], data)
	if _, err := o.w.Write(b); err != nil {
		return fmt.Errorf("nbdclient: send option %d: %w", opt, err)
	}
	return nil
}

// reply reads one option reply to opt: its type and payload (bounded).
func (o *optConn) reply(opt uint32) (uint32, []byte, error) {
	var h [20]byte
	if _, err := io.ReadFull(o.r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("nbdclient: read option reply: %w", err)
	}
	if binary.BigEndian.Uint64(h[0:]) != magicOptReply {
		return 0, nil, protoErr("bad option reply magic")
	}
	if got := binary.BigEndian.Uint32(h[8:]); got != opt {
		return 0, nil, protoErr("reply to option %d, asked %d", got, opt)
	}
	typ, n := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:])
	if n > maxOptionReply {
		return 0, nil, protoErr("option reply of %d bytes", n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(o.r, data); err != nil {
		return 0, nil, fmt.Errorf("nbdclient: read option reply: %w", err)
	}
	return typ, data, nil
}

// simple sends an option whose only good answer is ACK; an error reply
// means "no" (false), anything else is a protocol error.
func (o *optConn) simple(opt uint32, data []byte) (bool, error) {
	if err := o.send(opt, data); err != nil {
		return false, err
	}
	typ, _, err := o.reply(opt)
	switch {
	case err != nil:
		return false, err
	case typ == repAck:
		return true, nil
	case typ&repErrBit != 0:
		return false, nil
	}
	return false, protoErr("option %d answered with reply type %d", opt, typ)
}

// nameData is an export name as options carry it, with room after it.
func nameData(export string, extra int) []byte {
	b := make([]byte, 4+len(export), 4+len(export)+extra)
	binary.BigEndian.PutUint32(b, uint32(len(export)))
	copy(b[4:], export)
	return b
}

// setMeta asks for base:allocation; a server that refuses it still serves
// block status queries without it as "all data" (see Extents).
func (o *optConn) setMeta(export string, info *Info) error {
	b := nameData(export, 8+len(metaBaseAllocation))
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint32(b, uint32(len(metaBaseAllocation)))
	b = append(b, metaBaseAllocation...)
	if err := o.send(optSetMetaContext, b); err != nil {
		return err
	}
	for range 16 { // one context asked for: an ACK follows its one reply
		typ, data, err := o.reply(optSetMetaContext)
		if err != nil {
			return err
		}
		switch {
		case typ == repAck || typ&repErrBit != 0:
			return nil
		case typ == repMetaContext && len(data) >= 4 && string(data[4:]) == metaBaseAllocation:
			info.AllocationID, info.HasAllocation = binary.BigEndian.Uint32(data), true
		case typ != repMetaContext:
			return protoErr("meta context reply type %d", typ)
		}
	}
	return protoErr("too many meta context replies")
}

// goExport sends NBD_OPT_GO with INFO requests for the export's size and
// flags and block sizes, and reads the INFO replies up to the ACK.
func (o *optConn) goExport(export string, info *Info) error {
	b := nameData(export, 4)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint16(b, infoBlockSize)
	if err := o.send(optGo, b); err != nil {
		return err
	}
	haveExport := false
	for range 64 {
		typ, data, err := o.reply(optGo)
		if err != nil {
			return err
		}
		switch {
		case typ == repAck:
			if !haveExport {
				return protoErr("NBD_OPT_GO acknowledged without NBD_INFO_EXPORT")
			}
			return nil
		case typ == repErrUnsup:
			return fmt.Errorf("%w: NBD_OPT_GO not supported", ErrUnsupported)
		case typ&repErrBit != 0:
			return refusal(export, typ, printable(data))
		case typ == repInfo:
			if err := parseInfo(data, info, &haveExport); err != nil {
				return err
			}
		}
	}
	return protoErr("too many NBD_OPT_GO replies")
}

// parseInfo takes in one NBD_REP_INFO payload; unknown info types are
// skipped, as the spec asks.
func parseInfo(data []byte, info *Info, haveExport *bool) error {
	if len(data) < 2 {
		return protoErr("short NBD_REP_INFO")
	}
	switch binary.BigEndian.Uint16(data) {
	case infoExport:
		if len(data) != 12 {
			return protoErr("NBD_INFO_EXPORT of %d bytes", len(data))
		}
		size := binary.BigEndian.Uint64(data[2:])
		if size > 1<<62 {
			return protoErr("export size %d", size)
		}
		info.Size, info.Flags, *haveExport = int64(size), binary.BigEndian.Uint16(data[10:]), true
	case infoBlockSize:
		if len(data) != 14 {
			return protoErr("NBD_INFO_BLOCK_SIZE of %d bytes", len(data))
		}
		info.MinBlock = binary.BigEndian.Uint32(data[2:])
		info.PreferredBlock = binary.BigEndian.Uint32(data[6:])
		info.MaxBlock = binary.BigEndian.Uint32(data[10:])
	}
	return nil
}

// printable is a server's error text, bounded and without control bytes.
func printable(b []byte) string {
	b = b[:min(len(b), 256)]
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		out = append(out, c)
	}
	return string(out)
}
