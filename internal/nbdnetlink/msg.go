// Package nbdnetlink speaks the kernel NBD driver's generic-netlink
// interface (family "nbd", linux/nbd-netlink.h): CONNECT a device to
// sockets, DISCONNECT it, RECONFIGURE it (new sockets after a server
// restart, a new size after a resize) and ask its STATUS. It is written on
// golang.org/x/sys/unix alone: the handful of messages it needs do not
// justify a netlink library, and the encoding is unit-tested byte for byte.
package nbdnetlink

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Commands and attributes of the "nbd" family (linux/nbd-netlink.h).
const (
	cmdConnect     = 1
	cmdDisconnect  = 2
	cmdReconfigure = 3
	cmdStatus      = 5

	attrIndex       = 1
	attrSizeBytes   = 2
	attrBlockSize   = 3
	attrTimeout     = 4
	attrServerFlags = 5
	attrClientFlags = 6
	attrSockets     = 7
	attrDeadTimeout = 8
	attrDeviceList  = 9
	attrBackend     = 10

	sockItem = 1
	sockFD   = 1

	deviceItem      = 1
	deviceIndex     = 1
	deviceConnected = 2

	familyVersion = 1
)

// Generic netlink's controller, which resolves a family name to its id.
const (
	ctrlID             = 0x10 // GENL_ID_CTRL
	ctrlCmdGetFamily   = 3
	ctrlAttrFamilyID   = 1
	ctrlAttrFamilyName = 2
	ctrlVersion        = 2
)

const (
	nlaNested   = 0x8000 // NLA_F_NESTED
	nlmsgHdrLen = 16
	genlHdrLen  = 4
	nlaHdrLen   = 4
)

// attrs builds a list of netlink attributes (native byte order, each
// padded to 4 bytes).
type attrs []byte

func (a attrs) put(typ uint16, payload []byte) attrs {
	n := nlaHdrLen + len(payload)
	a = binary.NativeEndian.AppendUint16(a, uint16(n))
	a = binary.NativeEndian.AppendUint16(a, typ)
	a = append(a, payload...)
	return append(a, make([]byte, pad(n)-n)...)
}

func (a attrs) u32(typ uint16, v uint32) attrs {
	return a.put(typ, binary.NativeEndian.AppendUint32(nil, v))
}

func (a attrs) u64(typ uint16, v uint64) attrs {
	return a.put(typ, binary.NativeEndian.AppendUint64(nil, v))
}

func (a attrs) str(typ uint16, s string) attrs { return a.put(typ, append([]byte(s), 0)) }

func (a attrs) nest(typ uint16, inner attrs) attrs { return a.put(typ|nlaNested, inner) }

func pad(n int) int { return (n + 3) &^ 3 }

// message frames one generic-netlink request: netlink header, genl header
// (cmd, version), attributes.
func message(family uint16, flags uint16, seq uint32, cmd, version uint8, a attrs) []byte {
	n := nlmsgHdrLen + genlHdrLen + len(a)
	b := binary.NativeEndian.AppendUint32(nil, uint32(n))
	b = binary.NativeEndian.AppendUint16(b, family)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port: the kernel fills it in
	b = append(b, cmd, version, 0, 0)
	return append(b, a...)
}

var errShort = errors.New("nbdnetlink: truncated message")

// parseAttrs splits an attribute list by type (the nested flag removed);
// a later attribute of one type replaces an earlier one.
func parseAttrs(b []byte) (map[uint16][]byte, error) {
	out := map[uint16][]byte{}
	for len(b) > 0 {
		if len(b) < nlaHdrLen {
			return nil, errShort
		}
		n := int(binary.NativeEndian.Uint16(b))
		if n < nlaHdrLen || n > len(b) {
			return nil, fmt.Errorf("%w: attribute of %d bytes in %d", errShort, n, len(b))
		}
		out[binary.NativeEndian.Uint16(b[2:])&^nlaNested] = b[nlaHdrLen:n]
		b = b[min(pad(n), len(b)):]
	}
	return out, nil
}

// eachAttr calls f for every attribute in b, in order (lists of items of
// one type, like the status reply's devices).
func eachAttr(b []byte, f func(typ uint16, payload []byte) error) error {
	for len(b) > 0 {
		if len(b) < nlaHdrLen {
			return errShort
		}
		n := int(binary.NativeEndian.Uint16(b))
		if n < nlaHdrLen || n > len(b) {
			return errShort
		}
		if err := f(binary.NativeEndian.Uint16(b[2:])&^nlaNested, b[nlaHdrLen:n]); err != nil {
			return err
		}
		b = b[min(pad(n), len(b)):]
	}
	return nil
}
