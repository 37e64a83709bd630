package nbdserver

import (
	"encoding/binary"
	"errors"
)

// The options whose data asks for something: INFO and GO, which describe
// (and GO selects) an export, and the meta-context options.

// infoGo answers INFO and GO: data is u32 name length, name, u16 count of
// info requests, u16 each.
func (c *conn) infoGo(o *option) (bool, error) {
	d := o.data
	if len(d) < 6 {
		return false, c.optError(o.typ, repErrInvalid, "truncated request")
	}
	nameLen := binary.BigEndian.Uint32(d)
	if uint64(nameLen)+6 > uint64(len(d)) {
		return false, c.optError(o.typ, repErrInvalid, "name length %d past the data", nameLen)
	}
	name := string(d[4 : 4+nameLen])
	rest := d[4+nameLen:]
	nReq := int(binary.BigEndian.Uint16(rest))
	if len(rest) != 2+2*nReq {
		return false, c.optError(o.typ, repErrInvalid, "%d info requests in %d bytes", nReq, len(rest)-2)
	}
	want := map[uint16]bool{}
	for i := 0; i < nReq; i++ {
		want[binary.BigEndian.Uint16(rest[2+2*i:])] = true
	}
	info, ok := c.resolve(name)
	if !ok {
		return false, c.optError(o.typ, repErrUnknown, "no export named %q", name)
	}
	size := info.Size
	if o.typ == optGo {
		if err := c.open(info); errors.Is(err, errDisconnected) {
			return false, failHandshake(HandshakeUnknownExport, err) // killed: no reply can go out
		} else if err != nil {
			return false, c.optError(o.typ, repErrUnknown, "export %q: %v", name, err)
		}
		size = c.size
	}
	flags := c.transmissionFlags(info)
	exp := binary.BigEndian.AppendUint16(nil, infoExport)
	exp = binary.BigEndian.AppendUint64(exp, uint64(size))
	exp = binary.BigEndian.AppendUint16(exp, flags)
	replies := [][]byte{exp}
	if want[infoName] {
		replies = append(replies, append(binary.BigEndian.AppendUint16(nil, infoName), info.Name...))
	}
	if want[infoDescription] && info.Description != "" {
		replies = append(replies, append(binary.BigEndian.AppendUint16(nil, infoDescription), info.Description...))
	}
	minBlock := max(info.MinBlockSize, 1)
	bs := binary.BigEndian.AppendUint16(nil, infoBlockSize)
	bs = binary.BigEndian.AppendUint32(bs, minBlock)
	bs = binary.BigEndian.AppendUint32(bs, max(minBlock, 4096))
	bs = binary.BigEndian.AppendUint32(bs, MaxBlockSize)
	replies = append(replies, bs)
	for _, r := range replies {
		if err := c.optReply(o.typ, repInfo, r); err != nil {
			return false, err
		}
	}
	if err := c.optReply(o.typ, repAck, nil); err != nil {
		return false, err
	}
	return o.typ == optGo, nil
}

// metaContext answers LIST_META_CONTEXT and SET_META_CONTEXT: data is u32
// name length, name, u32 query count, then u32 length + query each.
//
// SET replaces the contexts set before it even when it fails (proto.md:
// "including when this command fails"), so they are dropped before the
// request is looked at: a failed SET leaves none, and BLOCK_STATUS is
// then refused.
func (c *conn) metaContext(o *option) error {
	if o.typ == optSetMetaContext {
		c.metaAllocation, c.metaExport = false, ""
	}
	d := o.data
	if len(d) < 8 {
		return c.optError(o.typ, repErrInvalid, "truncated request")
	}
	nameLen := binary.BigEndian.Uint32(d)
	if uint64(nameLen)+8 > uint64(len(d)) {
		return c.optError(o.typ, repErrInvalid, "name length %d past the data", nameLen)
	}
	name := string(d[4 : 4+nameLen])
	rest := d[4+nameLen:]
	n := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	var queries []string
	for i := uint32(0); i < n; i++ {
		if len(rest) < 4 {
			return c.optError(o.typ, repErrInvalid, "query %d truncated", i)
		}
		ql := binary.BigEndian.Uint32(rest)
		if uint64(ql)+4 > uint64(len(rest)) {
			return c.optError(o.typ, repErrInvalid, "query %d length %d past the data", i, ql)
		}
		queries = append(queries, string(rest[4:4+ql]))
		rest = rest[4+ql:]
	}
	if len(rest) != 0 {
		return c.optError(o.typ, repErrInvalid, "%d bytes after the queries", len(rest))
	}
	if o.typ == optSetMetaContext && !c.structured {
		return c.optError(o.typ, repErrInvalid, "SET_META_CONTEXT needs structured replies first")
	}
	info, ok := c.resolve(name)
	if !ok {
		return c.optError(o.typ, repErrUnknown, "no export named %q", name)
	}
	match := false
	for _, q := range queries {
		if q == metaBaseAllocation || (o.typ == optListMetaContext && q == "base:") {
			match = true
		}
	}
	if o.typ == optListMetaContext && len(queries) == 0 {
		match = true
	}
	if o.typ == optSetMetaContext {
		c.metaAllocation, c.metaExport = match, info.Name
	}
	if match {
		id := uint32(0) // LIST: ids mean nothing
		if o.typ == optSetMetaContext {
			id = metaAllocationID
		}
		r := binary.BigEndian.AppendUint32(nil, id)
		if err := c.optReply(o.typ, repMetaContext, append(r, metaBaseAllocation...)); err != nil {
			return err
		}
	}
	return c.optReply(o.typ, repAck, nil)
}
