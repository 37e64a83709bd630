package nbdclient

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"github.com/pojntfx/go-nbd/pkg/protocol"
)

// Wire constants of the NBD protocol (doc/proto.md in NetworkBlockDevice/nbd).
// Those that go-nbd's protocol package defines (pkg/nbdserver uses it
// too) come from there, so that client and server share one spelling;
// the rest, which go-nbd lacks (structured replies, meta contexts,
// STARTTLS, the newer flags and commands), are defined here from the spec.
const (
	magicNBD       = protocol.NEGOTIATION_MAGIC_OLDSTYLE // "NBDMAGIC", which newstyle sends too
	magicOption    = protocol.NEGOTIATION_MAGIC_OPTION   // "IHAVEOPT"
	magicOptReply  = protocol.NEGOTIATION_MAGIC_REPLY
	magicRequest   = protocol.TRANSMISSION_MAGIC_REQUEST
	magicSimple    = protocol.TRANSMISSION_MAGIC_REPLY
	magicStructure = uint32(0x668e33ef) // not in go-nbd

	hsFixedNewstyle = protocol.NEGOTIATION_HANDSHAKE_FLAG_FIXED_NEWSTYLE
	hsNoZeroes      = uint16(1 << 1) // not in go-nbd
)

// Options and their replies (go-nbd lacks STARTTLS, structured replies,
// meta contexts and REP_META_CONTEXT).
const (
	optAbort           = protocol.NEGOTIATION_ID_OPTION_ABORT
	optStartTLS        = uint32(5)
	optGo              = protocol.NEGOTIATION_ID_OPTION_GO
	optStructuredReply = uint32(8)
	optSetMetaContext  = uint32(10)

	repAck         = protocol.NEGOTIATION_TYPE_REPLY_ACK
	repInfo        = protocol.NEGOTIATION_TYPE_REPLY_INFO
	repMetaContext = uint32(4)
	repErrBit      = uint32(1 << 31)
	repErrUnsup    = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNSUPPORTED

	infoExport    = protocol.NEGOTIATION_TYPE_INFO_EXPORT
	infoBlockSize = protocol.NEGOTIATION_TYPE_INFO_BLOCKSIZE
)

// Transmission flags (go-nbd has only HAS_FLAGS and CAN_MULTI_CONN).
const (
	FlagHasFlags     = protocol.NEGOTIATION_REPLY_FLAGS_HAS_FLAGS
	FlagReadOnly     = uint16(1 << 1)
	FlagSendFlush    = uint16(1 << 2)
	FlagSendFUA      = uint16(1 << 3)
	FlagSendTrim     = uint16(1 << 5)
	FlagWriteZeroes  = uint16(1 << 6)
	FlagSendDF       = uint16(1 << 7)
	FlagCanMultiConn = protocol.NEGOTIATION_REPLY_FLAGS_CAN_MULTI_CONN
	FlagSendFastZero = uint16(1 << 11)
)

// Commands and command flags (go-nbd has only READ, WRITE and DISC).
const (
	cmdRead        = protocol.TRANSMISSION_TYPE_REQUEST_READ
	cmdWrite       = protocol.TRANSMISSION_TYPE_REQUEST_WRITE
	cmdDisc        = protocol.TRANSMISSION_TYPE_REQUEST_DISC
	cmdFlush       = uint16(3)
	cmdTrim        = uint16(4)
	cmdWriteZeroes = uint16(6)
	cmdBlockStatus = uint16(7)

	cmdFlagFUA      = uint16(1 << 0)
	cmdFlagNoHole   = uint16(1 << 1)
	cmdFlagDF       = uint16(1 << 2)
	cmdFlagFastZero = uint16(1 << 4)
)

// Structured reply chunk types.
const (
	chunkFlagDone    = uint16(1)
	chunkNone        = uint16(0)
	chunkOffsetData  = uint16(1)
	chunkOffsetHole  = uint16(2)
	chunkBlockStatus = uint16(5)
	chunkErrBit      = uint16(1 << 15)
	chunkError       = chunkErrBit | 1
	chunkErrorOffset = chunkErrBit | 2
)

// The meta context whose extents Extents reports.
const metaBaseAllocation = "base:allocation"

// Sizes of the fixed headers.
const (
	requestSize     = 28 // magic, flags, type, cookie, offset, length
	simpleReplySize = 16 // magic, error, cookie
	chunkHeaderSize = 20 // magic, flags, type, cookie, length
)

// Bounds on what a server may make the client read or hold.
const (
	// MaxRequest is the longest read or write sent in one request; longer
	// ones are split. The spec's conservative maximum payload.
	MaxRequest = 32 << 20
	// maxErrorChunk bounds an error chunk: error, message length, a 4096
	// byte message, and an offset.
	maxErrorChunk = 4 + 2 + 4096 + 8
	// maxStatusChunk bounds a block status chunk: its context id and the
	// 2^20 extents the spec lets a server send in one (it is read extent
	// by extent, never held whole: see statusChunk).
	maxStatusChunk = 4 + 8<<20
	// maxKeptExtents bounds the extents one block status reply keeps (16
	// bytes each): the rest are dropped, and Extents asks again.
	maxKeptExtents = 1 << 16
	// maxOptionReply bounds an option reply's payload during the handshake.
	maxOptionReply = 64 << 10
)

// request is one request header.
type request struct {
	flags  uint16
	typ    uint16
	cookie uint64
	offset uint64
	length uint32
}

func (r *request) encode(b []byte) {
	binary.BigEndian.PutUint32(b[0:], magicRequest)
	binary.BigEndian.PutUint16(b[4:], r.flags)
	binary.BigEndian.PutUint16(b[6:], r.typ)
	binary.BigEndian.PutUint64(b[8:], r.cookie)
	binary.BigEndian.PutUint64(b[16:], r.offset)
	binary.BigEndian.PutUint32(b[24:], r.length)
}

// errnoOf maps an NBD error code to the errno it stands for, so that a
// remote EIO is syscall.EIO here too. The spec fixes the codes to Linux's
// values; an unknown code is EIO.
func errnoOf(code uint32) syscall.Errno {
	switch syscall.Errno(code) {
	case syscall.EPERM, syscall.EIO, syscall.ENOMEM, syscall.EINVAL, syscall.ENOSPC,
		syscall.EOVERFLOW, syscall.ENOTSUP, syscall.ESHUTDOWN:
		return syscall.Errno(code)
	}
	return syscall.EIO
}

// RemoteError is an error the server answered a request with.
type RemoteError struct {
	Errno   syscall.Errno
	Message string // from a structured error chunk, may be empty
}

func (e *RemoteError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("nbdclient: server: %v: %s", e.Errno, e.Message)
	}
	return fmt.Sprintf("nbdclient: server: %v", e.Errno)
}

// Unwrap lets errors.Is(err, syscall.EIO) see the errno.
func (e *RemoteError) Unwrap() error { return e.Errno }
