package nbdserver

import (
	"context"
	"errors"
	"syscall"

	"github.com/pojntfx/go-nbd/pkg/protocol"
)

// Wire constants of doc/proto.md. Those go-nbd's pkg/protocol defines are
// taken from it; it lacks the rest (structured replies, meta contexts, most
// commands and flags), which are defined here.
const (
	magicNBD      = protocol.NEGOTIATION_MAGIC_OLDSTYLE // "NBDMAGIC"
	magicOption   = protocol.NEGOTIATION_MAGIC_OPTION   // "IHAVEOPT"
	magicOptReply = protocol.NEGOTIATION_MAGIC_REPLY
	magicRequest  = protocol.TRANSMISSION_MAGIC_REQUEST
	magicSimple   = protocol.TRANSMISSION_MAGIC_REPLY
	magicChunk    = uint32(0x668e33ef)

	flagFixedNewstyle = protocol.NEGOTIATION_HANDSHAKE_FLAG_FIXED_NEWSTYLE
	flagNoZeroes      = uint16(1 << 1)

	clientFixedNewstyle = uint32(1 << 0)
	clientNoZeroes      = uint32(1 << 1)
)

// Options.
const (
	optExportName      = uint32(1)
	optAbort           = protocol.NEGOTIATION_ID_OPTION_ABORT
	optList            = protocol.NEGOTIATION_ID_OPTION_LIST
	optStartTLS        = uint32(5)
	optInfo            = protocol.NEGOTIATION_ID_OPTION_INFO
	optGo              = protocol.NEGOTIATION_ID_OPTION_GO
	optStructuredReply = uint32(8)
	optListMetaContext = uint32(9)
	optSetMetaContext  = uint32(10)
)

// Option reply types.
const (
	repAck         = protocol.NEGOTIATION_TYPE_REPLY_ACK
	repServer      = protocol.NEGOTIATION_TYPE_REPLY_SERVER
	repInfo        = protocol.NEGOTIATION_TYPE_REPLY_INFO
	repMetaContext = uint32(4)
	repErrUnsup    = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNSUPPORTED
	repErrPolicy   = uint32(1<<31 | 2)
	repErrInvalid  = uint32(1<<31 | 3)
	repErrUnknown  = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNKNOWN
	repErrTLSReqd  = uint32(1<<31 | 5)
	repErrTooBig   = uint32(1<<31 | 9)
)

// Info types.
const (
	infoExport      = protocol.NEGOTIATION_TYPE_INFO_EXPORT
	infoName        = protocol.NEGOTIATION_TYPE_INFO_NAME
	infoDescription = protocol.NEGOTIATION_TYPE_INFO_DESCRIPTION
	infoBlockSize   = protocol.NEGOTIATION_TYPE_INFO_BLOCKSIZE
)

// Transmission flags.
const (
	tfHasFlags        = protocol.NEGOTIATION_REPLY_FLAGS_HAS_FLAGS
	tfReadOnly        = uint16(1 << 1)
	tfSendFlush       = uint16(1 << 2)
	tfSendFUA         = uint16(1 << 3)
	tfSendTrim        = uint16(1 << 5)
	tfSendWriteZeroes = uint16(1 << 6)
	tfSendDF          = uint16(1 << 7)
	tfCanMultiConn    = protocol.NEGOTIATION_REPLY_FLAGS_CAN_MULTI_CONN
	tfSendCache       = uint16(1 << 10)
	tfSendFastZero    = uint16(1 << 11)
)

// Commands.
const (
	cmdRead        = protocol.TRANSMISSION_TYPE_REQUEST_READ
	cmdWrite       = protocol.TRANSMISSION_TYPE_REQUEST_WRITE
	cmdDisc        = protocol.TRANSMISSION_TYPE_REQUEST_DISC
	cmdFlush       = uint16(3)
	cmdTrim        = uint16(4)
	cmdCache       = uint16(5)
	cmdWriteZeroes = uint16(6)
	cmdBlockStatus = uint16(7)
)

// Command flags.
const (
	cmdFlagFUA      = uint16(1 << 0)
	cmdFlagNoHole   = uint16(1 << 1)
	cmdFlagDF       = uint16(1 << 2)
	cmdFlagReqOne   = uint16(1 << 3)
	cmdFlagFastZero = uint16(1 << 4)
)

// Structured reply chunk types and flags.
const (
	chunkFlagDone    = uint16(1)
	chunkNone        = uint16(0)
	chunkOffsetData  = uint16(1)
	chunkBlockStatus = uint16(5)
	chunkError       = uint16(1<<15 | 1)
)

// NBD error codes (Linux errno values, as the spec fixes them).
const (
	errPerm     = protocol.TRANSMISSION_ERROR_EPERM
	errIO       = uint32(5)
	errNoMem    = uint32(12)
	errInval    = protocol.TRANSMISSION_ERROR_EINVAL
	errNoSpc    = uint32(28)
	errOverflow = uint32(75)
	errNotSup   = uint32(95)
	errShutdown = uint32(108)
)

// The one meta context gdm serves, and its id on every connection.
const (
	metaBaseAllocation = "base:allocation"
	metaAllocationID   = uint32(1)
)

// Protocol bounds.
const (
	// maxString is the longest string proto.md allows (export names, error
	// messages).
	maxString = 4096
	// maxOptionLen bounds option data the server reads into memory: two
	// 4096-byte strings (the spec's longest) and their framing.
	maxOptionLen = 10 << 10
	// maxOptionSkip is how much oversized option data is read and dropped to
	// keep the connection; past it the connection is closed.
	maxOptionSkip = 1 << 20
	// MaxBlockSize is the largest request length advertised and served.
	MaxBlockSize = 32 << 20
	// maxPayloadSkip: an over-long write's payload up to this is read in
	// small pieces and dropped (the reply is EINVAL); longer, the connection
	// closes, since skipping it would take unbounded time.
	maxPayloadSkip = 128 << 20
	// requestHeaderSize is a transmission request's header: magic, flags,
	// type, cookie, offset, length.
	requestHeaderSize = 28
)

// ErrorCode maps an export's error to the NBD error sent to the client. It
// looks for the errno the error wraps (all of gdm's I/O errors wrap one),
// defaulting to EIO.
func ErrorCode(err error) uint32 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES):
		return errPerm
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG):
		return errNoSpc
	case errors.Is(err, syscall.EINVAL):
		return errInval
	case errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EOPNOTSUPP):
		return errNotSup
	case errors.Is(err, syscall.ENOMEM):
		return errNoMem
	case errors.Is(err, syscall.EOVERFLOW):
		return errOverflow
	case errors.Is(err, syscall.ESHUTDOWN), errors.Is(err, syscall.ENXIO), errors.Is(err, context.Canceled):
		return errShutdown
	default:
		return errIO
	}
}

// replyCode is ErrorCode for the request r: NBD_ENOTSUP answers only a
// WRITE_ZEROES with FAST_ZERO, and NBD_EOVERFLOW only a read with DF, as
// proto.md asks ("SHOULD NOT return ... except as documented"); for any
// other request either is EINVAL, as nbdkit answers. A remote leg's
// server or a backing file system can say ENOTSUP to anything.
func replyCode(r request, err error) uint32 {
	code := ErrorCode(err)
	switch {
	case code == errNotSup && (r.typ != cmdWriteZeroes || r.flags&cmdFlagFastZero == 0):
		return errInval
	case code == errOverflow && (r.typ != cmdRead || r.flags&cmdFlagDF == 0):
		return errInval
	}
	return code
}
