package nbdserver

import (
	"encoding/binary"
	"sync"
)

// Replies: what one is, and its encoding. replyWriter sends them.

// reply is one reply ready for the writer: a header and optional data.
type reply struct {
	head    [32]byte
	headLen int
	data    []byte
	pooled  *[]byte // returned to the pool once written
	pipe    *pipe   // data to splice into the socket after head, when set
	pipeLen int
	charge  int64 // bytes of budget to give back once written
}

func (c *conn) simpleReply(rep *reply, cookie uint64, errno uint32) {
	binary.BigEndian.PutUint32(rep.head[0:], magicSimple)
	binary.BigEndian.PutUint32(rep.head[4:], errno)
	binary.BigEndian.PutUint64(rep.head[8:], cookie)
	rep.headLen = 16
}

func (c *conn) chunkHeader(rep *reply, cookie uint64, flags, typ uint16, length uint32) {
	binary.BigEndian.PutUint32(rep.head[0:], magicChunk)
	binary.BigEndian.PutUint16(rep.head[4:], flags)
	binary.BigEndian.PutUint16(rep.head[6:], typ)
	binary.BigEndian.PutUint64(rep.head[8:], cookie)
	binary.BigEndian.PutUint32(rep.head[16:], length)
	rep.headLen = 20
}

// errorReply answers a read or block status with an error: a structured
// error chunk when structured replies were negotiated, else a simple reply.
func (c *conn) errorReply(rep *reply, r request, errno uint32) {
	if !c.structured {
		c.simpleReply(rep, r.cookie, errno)
		return
	}
	c.chunkHeader(rep, r.cookie, chunkFlagDone, chunkError, 6)
	binary.BigEndian.PutUint32(rep.head[20:], errno)
	binary.BigEndian.PutUint16(rep.head[24:], 0) // no message
	rep.headLen = 26
}

var replyPool = sync.Pool{New: func() any { return new(reply) }}

func getReply(charge int64) *reply {
	r := replyPool.Get().(*reply)
	r.charge = charge
	return r
}

func putReply(r *reply) {
	*r = reply{}
	replyPool.Put(r)
}
