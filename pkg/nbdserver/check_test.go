package nbdserver

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// checkMode is how a check test's client negotiates before transmission.
type checkMode int

const (
	plain      checkMode = iota // simple replies only
	structured                  // structured replies and base:allocation
	noMeta                      // structured replies, no meta context
)

func (m checkMode) String() string {
	return [...]string{"plain", "structured", "noMeta"}[m]
}

// connectMode dials sock and negotiates export name as mode says.
func connectMode(t *testing.T, sock, name string, mode checkMode) *client {
	t.Helper()
	c := dial(t, sock)
	switch mode {
	case plain:
		c.connect(name, false)
	case structured:
		c.connect(name, true)
	case noMeta:
		c.hello(clientFixedNewstyle | clientNoZeroes)
		c.opt(optStructuredReply, nil)
		if typ, _ := c.optReply(optStructuredReply); typ != repAck {
			t.Fatalf("STRUCTURED_REPLY: %#x", typ)
		}
		c.goExport(name)
	}
	return c
}

// answer reads the whole reply to a request of type typ and returns its
// error and cookie. Once structured replies are on, gdm answers reads,
// block status and unknown commands with chunks, and the commands that
// return no data with simple replies, as it always has.
func (c *client) answer(mode checkMode, typ uint16, length uint32) (uint32, uint64) {
	c.t.Helper()
	simpleAlways := typ == cmdWrite || typ == cmdFlush || typ == cmdTrim || typ == cmdWriteZeroes || typ == cmdCache
	if mode == plain || simpleAlways {
		e, ck := c.simple()
		if e == 0 && typ == cmdRead {
			c.read(int(length))
		}
		return e, ck
	}
	ch := c.chunk()
	if ch.flags != chunkFlagDone {
		c.t.Fatalf("chunk flags %#x: one chunk, done, expected", ch.flags)
	}
	if ch.typ == chunkError {
		return binary.BigEndian.Uint32(ch.payload), ch.cookie
	}
	return 0, ch.cookie
}

// fill is n bytes of 0xaa: the payload of writes that must not land.
func fill(n int) []byte { return bytes.Repeat([]byte{0xaa}, n) }

// checkCase is one request of TestCheckRules, on a fresh connection to
// export negotiated as mode, and the error it must get.
type checkCase struct {
	name    string
	export  string
	mode    checkMode
	typ     uint16
	flags   uint16
	off     uint64
	length  uint32
	payload []byte
	want    uint32
}

// bigExport is the size of the export "big": a read or write over the
// maximum still fits it.
const bigExport = MaxBlockSize + 64<<10

// checkCommandCases are TestCheckRules' cases for commands and their flags.
func checkCommandCases() []checkCase {
	return []checkCase{
		// Commands.
		{"unknown command", "a", plain, 42, 0, 0, 0, nil, errInval},
		{"unknown command, structured", "a", structured, 42, 0, 0, 0, nil, errInval},
		{"RESIZE is not served", "a", structured, 8, 0, 0, 4096, nil, errInval},

		// Unknown flags.
		{"unknown flag on read", "a", plain, cmdRead, 1 << 5, 0, 512, nil, errInval},
		{"high flag on flush", "a", plain, cmdFlush, 1 << 15, 0, 0, nil, errInval},

		// FUA: valid on every command once advertised (proto.md: MUST
		// accept), refused where it was not (a read-only export).
		{"FUA on write", "a", plain, cmdWrite, cmdFlagFUA, 0, 512, make([]byte, 512), 0},
		{"FUA on flush", "a", plain, cmdFlush, cmdFlagFUA, 0, 0, nil, 0},
		{"FUA on read", "a", structured, cmdRead, cmdFlagFUA, 0, 512, nil, 0},
		{"FUA on cache", "a", plain, cmdCache, cmdFlagFUA, 0, 4096, nil, 0},
		{"FUA on block status", "a", structured, cmdBlockStatus, cmdFlagFUA, 0, 4096, nil, 0},
		{"FUA not advertised", "ro", plain, cmdRead, cmdFlagFUA, 0, 512, nil, errInval},
		{"FUA not advertised, flush", "ro", plain, cmdFlush, cmdFlagFUA, 0, 0, nil, errInval},

		// NO_HOLE and FAST_ZERO: WRITE_ZEROES only.
		{"NO_HOLE on write zeroes", "a", plain, cmdWriteZeroes, cmdFlagNoHole, 0, 512, nil, 0},
		{"NO_HOLE on write", "a", plain, cmdWrite, cmdFlagNoHole, 0, 512, fill(512), errInval},
		{"NO_HOLE on trim", "a", plain, cmdTrim, cmdFlagNoHole, 0, 512, nil, errInval},
		{"FAST_ZERO on write", "a", plain, cmdWrite, cmdFlagFastZero, 0, 512, fill(512), errInval},
		{"FAST_ZERO on trim", "a", plain, cmdTrim, cmdFlagFastZero, 0, 512, nil, errInval},

		// DF: READ only, and only with structured replies.
		{"DF on read", "a", structured, cmdRead, cmdFlagDF, 0, 512, nil, 0},
		{"DF without structured replies", "a", plain, cmdRead, cmdFlagDF, 0, 512, nil, errInval},
		{"DF on write", "a", structured, cmdWrite, cmdFlagDF, 0, 512, fill(512), errInval},
		{"DF on block status", "a", structured, cmdBlockStatus, cmdFlagDF, 0, 4096, nil, errInval},

		// REQ_ONE: BLOCK_STATUS only.
		{"REQ_ONE on block status", "a", structured, cmdBlockStatus, cmdFlagReqOne, 0, 4096, nil, 0},
		{"REQ_ONE on read", "a", structured, cmdRead, cmdFlagReqOne, 0, 512, nil, errInval},
		{"REQ_ONE on write zeroes", "a", plain, cmdWriteZeroes, cmdFlagReqOne, 0, 512, nil, errInval},
	}
}

// checkExportCases are TestCheckRules' cases for what the export allows:
// writes on a read-only export, meta contexts, lengths and ranges.
func checkExportCases() []checkCase {
	return []checkCase{
		// Read-only export: EPERM for what writes, before anything else.
		{"write on read-only", "ro", plain, cmdWrite, 0, 0, 512, fill(512), errPerm},
		{"trim on read-only", "ro", plain, cmdTrim, 0, 0, 512, nil, errPerm},
		{"write zeroes on read-only", "ro", plain, cmdWriteZeroes, 0, 0, 512, nil, errPerm},
		{"write on read-only, bad flag too", "ro", plain, cmdWrite, cmdFlagDF, 0, 512, fill(512), errPerm},

		// Block status needs base:allocation.
		{"block status without a meta context", "a", noMeta, cmdBlockStatus, 0, 0, 4096, nil, errInval},
		{"block status without structured replies", "a", plain, cmdBlockStatus, 0, 0, 4096, nil, errInval},

		// Lengths.
		{"read over the maximum", "big", plain, cmdRead, 0, 0, MaxBlockSize + 1, nil, errInval},
		{"read over the maximum, structured", "big", structured, cmdRead, 0, 0, MaxBlockSize + 1, nil, errInval},
		{"write over the maximum", "big", plain, cmdWrite, 0, 0, MaxBlockSize + 1, fill(MaxBlockSize + 1), errInval},
		{"write over the maximum and past the end", "a", plain, cmdWrite, 0, 0, MaxBlockSize + 1, fill(MaxBlockSize + 1), errInval},
		{"trim over the maximum is no payload", "big", plain, cmdTrim, 0, 0, MaxBlockSize + 4096, nil, 0},
		{"zero-length block status", "a", structured, cmdBlockStatus, 0, 0, 0, nil, errInval},
		{"zero-length read", "a", structured, cmdRead, 0, 4096, 0, nil, 0},

		// Ranges: ENOSPC for what writes data, EINVAL for the rest.
		{"read past the end", "a", plain, cmdRead, 0, 1<<20 - 511, 512, nil, errInval},
		{"read offset overflow", "a", structured, cmdRead, 0, 1<<64 - 512, 1024, nil, errInval},
		{"write past the end", "a", plain, cmdWrite, 0, 1<<20 - 511, 512, fill(512), errNoSpc},
		{"write offset overflow", "a", plain, cmdWrite, 0, 1<<64 - 512, 1024, fill(1024), errNoSpc},
		{"trim past the end", "a", plain, cmdTrim, 0, 1 << 20, 512, nil, errInval},
		{"write zeroes past the end", "a", plain, cmdWriteZeroes, 0, 1<<20 - 1, 2, nil, errNoSpc},
		{"cache past the end", "a", plain, cmdCache, 0, 1 << 20, 4096, nil, errInval},
		{"block status past the end", "a", structured, cmdBlockStatus, 0, 1<<20 - 4096, 8192, nil, errInval},
		{"block status offset overflow", "a", structured, cmdBlockStatus, 0, 1<<64 - 4096, 8192, nil, errInval},
		{"read to the very end", "a", plain, cmdRead, 0, 1<<20 - 512, 512, nil, 0},
	}
}

// TestCheckRules sends one request per rule of check on a fresh
// connection, then a valid read on the same connection: a refusal is an
// error reply, never the end of the connection, and a refused write's
// payload is consumed (else the read after it would be misread).
func TestCheckRules(t *testing.T) {
	exports := testExports{"a": newMem(1 << 20), "ro": newMem(8192), "big": newMem(bigExport)}
	_, sock := startServer(t, exports, nil)
	for _, tc := range append(checkCommandCases(), checkExportCases()...) {
		t.Run(tc.name, func(t *testing.T) {
			c := connectMode(t, sock, tc.export, tc.mode)
			c.request(tc.typ, tc.flags, 7, tc.off, tc.length, tc.payload)
			if e, ck := c.answer(tc.mode, tc.typ, tc.length); e != tc.want || ck != 7 {
				t.Fatalf("%s: errno %d cookie %d, want errno %d cookie 7", tc.mode, e, ck, tc.want)
			}
			c.request(cmdRead, 0, 8, 0, 512, nil)
			if e, ck := c.answer(tc.mode, cmdRead, 512); e != 0 || ck != 8 {
				t.Fatalf("read after it: errno %d cookie %d; the connection should live on", e, ck)
			}
			m := exports[tc.export]
			m.mu.Lock()
			landed := bytes.IndexByte(m.data, 0xaa)
			clear(m.data) // so that one failure does not fail the cases after it
			m.mu.Unlock()
			if landed >= 0 {
				t.Fatalf("the refused write landed at %d", landed)
			}
		})
	}
}

// TestCheckAdvertised covers the rules no export of today's server can
// reach over the wire: every export advertises FLUSH and CACHE, and the
// commands and flags a read-only export leaves out are refused with EPERM
// first. A connection that advertised nothing must still refuse them.
func TestCheckAdvertised(t *testing.T) {
	all := (&conn{}).transmissionFlags(ExportInfo{})
	cases := []struct {
		name      string
		advertise uint16
		typ       uint16
		flags     uint16
		want      uint32
	}{
		{"flush, advertised", all, cmdFlush, 0, 0},
		{"flush, not advertised", tfHasFlags, cmdFlush, 0, errInval},
		{"cache, not advertised", tfHasFlags, cmdCache, 0, errInval},
		{"trim, not advertised", tfHasFlags, cmdTrim, 0, errInval},
		{"write zeroes, not advertised", tfHasFlags, cmdWriteZeroes, 0, errInval},
		{"write zeroes, advertised", all, cmdWriteZeroes, cmdFlagFastZero, 0},
		{"FAST_ZERO, not advertised", all &^ tfSendFastZero, cmdWriteZeroes, cmdFlagFastZero, errInval},
		{"FUA, not advertised", all &^ tfSendFUA, cmdWrite, cmdFlagFUA, errInval},
		{"DF, advertised", all | tfSendDF, cmdRead, cmdFlagDF, 0},
		{"DF, not advertised", all &^ tfSendDF, cmdRead, cmdFlagDF, errInval},
	}
	for _, tc := range cases {
		c := &conn{flags: tc.advertise, size: 1 << 20, structured: true, metaAllocation: true}
		r := request{typ: tc.typ, flags: tc.flags, length: 512}
		if got := c.check(r); got != tc.want {
			t.Errorf("%s: check = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// BenchmarkCheck measures check alone, the cost it adds to every request:
// the socket benchmarks (BenchmarkRequests) are too noisy to show it.
func BenchmarkCheck(b *testing.B) {
	c := &conn{size: 1 << 30}
	c.flags = c.transmissionFlags(ExportInfo{})
	for _, bc := range []struct {
		name string
		r    request
	}{
		{"op=read", request{typ: cmdRead, offset: 4096, length: 4096}},
		{"op=write/fua", request{typ: cmdWrite, flags: cmdFlagFUA, offset: 4096, length: 4096}},
		{"op=unknown", request{typ: 42}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				if c.check(bc.r) == 0 && bc.r.typ == 42 {
					b.Fatal("unknown command passed")
				}
			}
		})
	}
}

// A request that panics is answered EIO in the form its command's errors
// take: an error chunk for a READ once structured replies are on (a simple
// reply there is a protocol error the client cannot parse).
func TestPanicReplyForm(t *testing.T) {
	m := newMem(1 << 20)
	m.panicOn = 4096
	s, sock := startServer(t, testExports{"disk": m}, nil)
	c := dial(t, sock)
	c.connect("disk", true)
	c.request(cmdRead, 0, 7, 4096, 512, nil)
	if e, ck := c.answer(structured, cmdRead, 512); e != errIO || ck != 7 {
		t.Fatalf("panicking read: errno %d cookie %d, want EIO cookie 7", e, ck)
	}
	c.request(cmdRead, 0, 8, 0, 512, nil)
	if e, ck := c.answer(structured, cmdRead, 512); e != 0 || ck != 8 {
		t.Fatalf("read after the panic: errno %d cookie %d", e, ck)
	}
	if s.Stats().Panics.Load() != 1 {
		t.Fatal("panic not counted")
	}
}
