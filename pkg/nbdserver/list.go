package nbdserver

import "encoding/binary"

// listWriteSize is how many bytes of LIST replies go out in one write.
const listWriteSize = 64 << 10

// listExports answers NBD_OPT_LIST: a SERVER reply per export, then ACK.
// The replies are gathered into writes of about listWriteSize, not written
// one by one: a daemon with 10,000 devices answered each LIST, a 16-byte
// option any client may repeat until the handshake times out, with 10,000
// system calls.
func (c *conn) listExports(opt uint32) error {
	var buf, name []byte
	for _, e := range c.srv.Exports.List() {
		name = binary.BigEndian.AppendUint32(name[:0], uint32(len(e.Name)))
		buf = appendOptReply(buf, opt, repServer, append(name, e.Name...))
		if len(buf) >= listWriteSize {
			if err := c.writeOptReplies(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	return c.writeOptReplies(appendOptReply(buf, opt, repAck, nil))
}
