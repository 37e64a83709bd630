package nbdclient

import "fmt"

// A redial (or a pool connection) must find the export the first dial
// found: the client sized its table by it, and chooses every request's
// flags and split from the first connection's Info (DF, FUA, WRITE_ZEROES,
// FAST_ZERO, block sizes), whichever connection the request then goes
// out on. A server that came back with one of those gone (restarted
// older, or configured otherwise) would be sent flags and commands it did
// not advertise, which the spec forbids, and answer EINVAL to them for as
// long as the table lives. Such a connection is refused, as one to an
// export of another size is; features gained are harmless, and ignored.

// usedFlags are the transmission flags whose loss makes requests the
// client would send invalid: the commands and flags it sends, and
// CAN_MULTI_CONN, by which it keeps a pool (and a flush on one of its
// connections covers the others' writes).
const usedFlags = FlagSendFlush | FlagSendFUA | FlagSendTrim | FlagWriteZeroes | FlagSendDF | FlagCanMultiConn | FlagSendFastZero

// replacedBy says why a connection to an export with next cannot stand in
// for one to the first's (i): nil if it can.
func (i Info) replacedBy(next Info) error {
	var why string
	switch {
	case next.Size != i.Size:
		why = fmt.Sprintf("size %d, was %d", next.Size, i.Size)
	case next.Flags&FlagReadOnly != i.Flags&FlagReadOnly:
		why = fmt.Sprintf("read-only %v, was %v", next.Flags&FlagReadOnly != 0, i.Flags&FlagReadOnly != 0)
	case i.Flags&^next.Flags&usedFlags != 0:
		why = fmt.Sprintf("transmission flags %#x, were %#x", next.Flags, i.Flags)
	case i.Structured && !next.Structured:
		why = "no structured replies"
	case i.HasAllocation && !next.HasAllocation:
		why = "no base:allocation"
	case next.blockUnit() > i.blockUnit() || next.maxRequest() < i.maxRequest():
		why = fmt.Sprintf("block sizes %d/%d, were %d/%d", next.MinBlock, next.MaxBlock, i.MinBlock, i.MaxBlock)
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrExportChanged, why)
}
