package nbdserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestErrorCode(t *testing.T) {
	cases := []struct {
		err  error
		want uint32
	}{
		{nil, 0},
		{errors.New("anything"), errIO},
		{fmt.Errorf("x: %w", syscall.EIO), errIO},
		{fmt.Errorf("x: %w", syscall.EPERM), errPerm},
		{fmt.Errorf("x: %w", syscall.EROFS), errPerm},
		{fmt.Errorf("x: %w", syscall.ENOSPC), errNoSpc},
		{fmt.Errorf("x: %w", syscall.EDQUOT), errNoSpc},
		{fmt.Errorf("x: %w", syscall.EINVAL), errInval},
		{fmt.Errorf("x: %w", syscall.ENOTSUP), errNotSup},
		{fmt.Errorf("x: %w", syscall.ENOMEM), errNoMem},
		{fmt.Errorf("x: %w", syscall.EOVERFLOW), errOverflow},
		{fmt.Errorf("x: %w", syscall.ENXIO), errShutdown},
		{context.Canceled, errShutdown},
	}
	for _, c := range cases {
		if got := ErrorCode(c.err); got != c.want {
			t.Errorf("ErrorCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestGoWriteReadSimple(t *testing.T) {
	m := newMem(1 << 20)
	_, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	size, flags := c.connect("a", false)
	if size != 1<<20 {
		t.Fatalf("size %d", size)
	}
	want := tfHasFlags | tfSendFlush | tfCanMultiConn | tfSendCache | tfSendFUA | tfSendTrim | tfSendWriteZeroes | tfSendFastZero
	if flags != want {
		t.Fatalf("flags %#x, want %#x (no DF without structured replies)", flags, want)
	}
	data := bytes.Repeat([]byte("gdm!"), 1024)
	c.request(cmdWrite, 0, 7, 4096, 4096, data)
	if e, ck := c.simple(); e != 0 || ck != 7 {
		t.Fatalf("write reply %d cookie %d", e, ck)
	}
	c.request(cmdRead, 0, 8, 4096, 4096, nil)
	if e, ck := c.simple(); e != 0 || ck != 8 {
		t.Fatalf("read reply %d cookie %d", e, ck)
	}
	if got := c.read(4096); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	// FUA write flushes; FLUSH flushes.
	c.request(cmdWrite, cmdFlagFUA, 9, 0, 512, make([]byte, 512))
	c.request(cmdFlush, 0, 10, 0, 0, nil)
	for range 2 {
		if e, _ := c.simple(); e != 0 {
			t.Fatal(e)
		}
	}
	if m.flushes.Load() != 2 {
		t.Fatalf("flushes = %d, want 2", m.flushes.Load())
	}
	// DISC: flushed, then closed, export released.
	c.request(cmdDisc, 0, 11, 0, 0, nil)
	c.expectClosed()
	if m.flushes.Load() != 3 {
		t.Fatalf("DISC did not flush (flushes = %d)", m.flushes.Load())
	}
	waitUntil(t, func() bool { return m.opened.Load() == 0 })
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestExportNameOption(t *testing.T) {
	m := newMem(8192)
	_, sock := startServer(t, testExports{"a": m}, nil)
	for _, noZeroes := range []bool{false, true} {
		c := dial(t, sock)
		f := clientFixedNewstyle
		if noZeroes {
			f |= clientNoZeroes
		}
		if hf := c.hello(f); hf != flagFixedNewstyle|flagNoZeroes {
			t.Fatalf("handshake flags %#x", hf)
		}
		c.opt(optExportName, []byte("a"))
		b := c.read(10)
		if binary.BigEndian.Uint64(b) != 8192 {
			t.Fatalf("size % x", b)
		}
		if !noZeroes {
			if z := c.read(124); !bytes.Equal(z, make([]byte, 124)) {
				t.Fatal("124 zero bytes expected")
			}
		}
		c.request(cmdRead, 0, 1, 0, 512, nil)
		if e, _ := c.simple(); e != 0 {
			t.Fatal(e)
		}
		c.read(512)
	}
	// Unknown export via EXPORT_NAME: nothing to reply with; closed.
	c := dial(t, sock)
	c.hello(clientFixedNewstyle)
	c.opt(optExportName, []byte("nope"))
	c.expectClosed()
}

func TestInfoListAbortUnknown(t *testing.T) {
	s, sock := startServer(t, testExports{"a": newMem(8192), "b": newMem(512)}, nil)
	c := dial(t, sock)
	c.hello(clientFixedNewstyle | clientNoZeroes)

	c.opt(optInfo, infoData("a", infoName, infoDescription, infoBlockSize))
	got := map[uint16][]byte{}
	for {
		typ, d := c.optReply(optInfo)
		if typ == repAck {
			break
		}
		if typ != repInfo {
			t.Fatalf("INFO reply %#x", typ)
		}
		got[binary.BigEndian.Uint16(d)] = d[2:]
	}
	if binary.BigEndian.Uint64(got[infoExport]) != 8192 || string(got[infoName]) != "a" || string(got[infoDescription]) != "desc of a" {
		t.Fatalf("INFO = %v", got)
	}
	bs := got[infoBlockSize]
	if binary.BigEndian.Uint32(bs) != 1 || binary.BigEndian.Uint32(bs[4:]) != 4096 || binary.BigEndian.Uint32(bs[8:]) != 32<<20 {
		t.Fatalf("block size % x", bs)
	}

	c.opt(optList, nil)
	var names []string
	for {
		typ, d := c.optReply(optList)
		if typ == repAck {
			break
		}
		names = append(names, string(d[4:4+binary.BigEndian.Uint32(d)]))
	}
	if len(names) != 2 {
		t.Fatalf("LIST = %v", names)
	}
	c.opt(optList, []byte{1})
	if typ, _ := c.optReply(optList); typ != repErrInvalid {
		t.Fatalf("LIST with data: %#x", typ)
	}
	// Unknown option, malformed INFO, unknown export: errors, and on we go.
	c.opt(99, []byte("x"))
	if typ, _ := c.optReply(99); typ != repErrUnsup {
		t.Fatalf("unknown option: %#x", typ)
	}
	c.opt(optStartTLS, nil)
	if typ, _ := c.optReply(optStartTLS); typ != repErrUnsup {
		t.Fatalf("STARTTLS: %#x", typ)
	}
	for _, bad := range [][]byte{{0, 0}, {0, 0, 0, 9, 'a', 0, 0}, append(infoData("a"), 0)} {
		c.opt(optInfo, bad)
		if typ, _ := c.optReply(optInfo); typ != repErrInvalid {
			t.Fatalf("malformed INFO % x: %#x", bad, typ)
		}
	}
	c.opt(optGo, infoData("zz"))
	if typ, _ := c.optReply(optGo); typ != repErrUnknown {
		t.Fatalf("GO unknown export: %#x", typ)
	}
	c.opt(optStructuredReply, []byte{1})
	if typ, _ := c.optReply(optStructuredReply); typ != repErrInvalid {
		t.Fatalf("STRUCTURED_REPLY with data: %#x", typ)
	}
	// Oversized but skippable option data: ERR_TOO_BIG, connection lives.
	c.opt(optInfo, make([]byte, maxOptionLen+1))
	if typ, _ := c.optReply(optInfo); typ != repErrTooBig {
		t.Fatalf("oversized option: %#x", typ)
	}
	c.opt(optAbort, nil)
	if typ, _ := c.optReply(optAbort); typ != repAck {
		t.Fatalf("ABORT: %#x", typ)
	}
	c.expectClosed()
	if s.Stats().HandshakeFailed[HandshakeAborted].Load() != 1 || s.Stats().Options[optInfo].Load() != 5 {
		t.Fatalf("stats: aborted %d, info options %d", s.Stats().HandshakeFailed[HandshakeAborted].Load(), s.Stats().Options[optInfo].Load())
	}
}

func TestHandshakeProtocolErrorsClose(t *testing.T) {
	s, sock := startServer(t, testExports{"a": newMem(512)}, func(s *Server) { s.HandshakeTimeout = 200 * time.Millisecond })
	// Bad option magic.
	c := dial(t, sock)
	c.hello(clientFixedNewstyle)
	c.write(make([]byte, 16))
	c.expectClosed()
	// A client flag the server does not know.
	c = dial(t, sock)
	c.hello(clientFixedNewstyle | 1<<2)
	c.expectClosed()
	// Option data too long to skip: closed without reading it.
	c = dial(t, sock)
	c.hello(clientFixedNewstyle)
	h := binary.BigEndian.AppendUint64(nil, magicOption)
	h = binary.BigEndian.AppendUint32(h, optInfo)
	h = binary.BigEndian.AppendUint32(h, 1<<31)
	c.write(h)
	c.expectClosed()
	// A client that stalls mid-handshake is closed at the timeout.
	c = dial(t, sock)
	c.hello(clientFixedNewstyle)
	c.expectClosed()
	st := s.Stats()
	if st.HandshakeFailed[HandshakeBadMagic].Load() != 1 || st.HandshakeFailed[HandshakeBadFlags].Load() != 1 ||
		st.HandshakeFailed[HandshakeOversized].Load() != 1 || st.HandshakeFailed[HandshakeIO].Load() != 1 {
		t.Fatalf("handshake failure counts %v %v %v %v", st.HandshakeFailed[HandshakeBadMagic].Load(),
			st.HandshakeFailed[HandshakeBadFlags].Load(), st.HandshakeFailed[HandshakeOversized].Load(), st.HandshakeFailed[HandshakeIO].Load())
	}
}

func TestMetaContexts(t *testing.T) {
	_, sock := startServer(t, testExports{"a": newMem(8192)}, nil)
	c := dial(t, sock)
	c.hello(clientFixedNewstyle | clientNoZeroes)
	// SET before structured replies: invalid.
	c.opt(optSetMetaContext, metaData("a", metaBaseAllocation))
	if typ, _ := c.optReply(optSetMetaContext); typ != repErrInvalid {
		t.Fatalf("SET without structured: %#x", typ)
	}
	for _, q := range [][]string{nil, {"base:"}, {metaBaseAllocation}} {
		c.opt(optListMetaContext, metaData("a", q...))
		typ, d := c.optReply(optListMetaContext)
		if typ != repMetaContext || string(d[4:]) != metaBaseAllocation {
			t.Fatalf("LIST %v: %#x %q", q, typ, d)
		}
		if typ, _ := c.optReply(optListMetaContext); typ != repAck {
			t.Fatalf("LIST ack %#x", typ)
		}
	}
	c.opt(optListMetaContext, metaData("a", "qemu:dirty-bitmap:x"))
	if typ, _ := c.optReply(optListMetaContext); typ != repAck {
		t.Fatalf("LIST of an unknown context: %#x, want a bare ACK", typ)
	}
	c.opt(optListMetaContext, metaData("zz"))
	if typ, _ := c.optReply(optListMetaContext); typ != repErrUnknown {
		t.Fatalf("LIST on unknown export: %#x", typ)
	}
	c.opt(optListMetaContext, []byte{0, 0, 0, 1, 'a', 0, 0, 0, 2, 0, 0, 0, 9})
	if typ, _ := c.optReply(optListMetaContext); typ != repErrInvalid {
		t.Fatalf("truncated query: %#x", typ)
	}
}

func TestStructuredRepliesAndBlockStatus(t *testing.T) {
	m := newMem(64 << 10)
	m.holes[0], m.holes[1], m.holes[4] = true, true, true
	m.failOn = 8192
	_, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	_, flags := c.connect("a", true)
	if flags&tfSendDF == 0 {
		t.Fatal("DF not advertised with structured replies")
	}
	copy(m.data[4096:], "hello")
	c.request(cmdRead, cmdFlagDF, 1, 4096, 4096, nil)
	ch := c.chunk()
	if ch.typ != chunkOffsetData || ch.flags != chunkFlagDone || ch.cookie != 1 ||
		binary.BigEndian.Uint64(ch.payload) != 4096 || !bytes.HasPrefix(ch.payload[8:], []byte("hello")) || len(ch.payload) != 8+4096 {
		t.Fatalf("read chunk %+v", ch.typ)
	}
	// A backend error on a read: an error chunk, and the connection lives.
	c.request(cmdRead, 0, 2, 8192, 512, nil)
	ch = c.chunk()
	if ch.typ != chunkError || ch.flags != chunkFlagDone || binary.BigEndian.Uint32(ch.payload) != errIO {
		t.Fatalf("error chunk %+v", ch)
	}
	// Block status: holes at blocks 0,1 and 4, merged into runs.
	c.request(cmdBlockStatus, 0, 3, 0, 6*4096, nil)
	ch = c.chunk()
	if ch.typ != chunkBlockStatus || binary.BigEndian.Uint32(ch.payload) != metaAllocationID {
		t.Fatalf("block status chunk %+v", ch)
	}
	var runs []string
	for d := ch.payload[4:]; len(d) > 0; d = d[8:] {
		runs = append(runs, fmt.Sprintf("%d:%d", binary.BigEndian.Uint32(d), binary.BigEndian.Uint32(d[4:])))
	}
	if got := strings.Join(runs, " "); got != "8192:3 8192:0 4096:3 4096:0" {
		t.Fatalf("extents %s", got)
	}
	c.request(cmdBlockStatus, cmdFlagReqOne, 4, 0, 6*4096, nil)
	ch = c.chunk()
	if len(ch.payload) != 12 || binary.BigEndian.Uint32(ch.payload[4:]) != 8192 {
		t.Fatalf("REQ_ONE payload % x", ch.payload)
	}
	// Past the end, and zero length: EINVAL.
	c.request(cmdBlockStatus, 0, 5, 60<<10, 8192, nil)
	if ch = c.chunk(); ch.typ != chunkError || binary.BigEndian.Uint32(ch.payload) != errInval {
		t.Fatalf("block status past end %+v", ch)
	}
	// A zero-length read.
	c.request(cmdRead, 0, 6, 0, 0, nil)
	if ch = c.chunk(); ch.typ != chunkNone || ch.flags != chunkFlagDone {
		t.Fatalf("zero-length read %+v", ch)
	}
}

func TestBlockStatusNeedsMetaContext(t *testing.T) {
	_, sock := startServer(t, testExports{"a": newMem(8192)}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	c.request(cmdBlockStatus, 0, 1, 0, 4096, nil)
	if e, _ := c.simple(); e != errInval {
		t.Fatalf("block status without a context: %d", e)
	}
}

func TestCommandErrors(t *testing.T) {
	m := newMem(1 << 20)
	m.failOn = 4096
	m.panicOn = 8192
	s, sock := startServer(t, testExports{"a": m, "ro": newMem(8192)}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	steps := []struct {
		name    string
		typ     uint16
		flags   uint16
		off     uint64
		length  uint32
		payload []byte
		want    uint32
	}{
		{"read EIO", cmdRead, 0, 4096, 512, nil, errIO},
		{"write ENOSPC from the backend", cmdWrite, 0, 4096, 512, make([]byte, 512), errNoSpc},
		{"read past end", cmdRead, 0, 1<<20 - 511, 512, nil, errInval},
		{"read offset overflow", cmdRead, 0, 1<<64 - 512, 1024, nil, errInval},
		{"write past end", cmdWrite, 0, 1 << 20, 512, make([]byte, 512), errNoSpc},
		{"trim past end", cmdTrim, 0, 1 << 20, 512, nil, errInval},
		{"zero past end", cmdWriteZeroes, 0, 1<<20 - 1, 2, nil, errNoSpc},
		{"read over max", cmdRead, 0, 0, MaxBlockSize + 1, nil, errInval},
		{"write over max, payload skipped", cmdWrite, 0, 0, MaxBlockSize + 1, make([]byte, MaxBlockSize+1), errInval},
		{"unknown command", 42, 0, 0, 0, nil, errInval},
		{"panic", cmdRead, 0, 8192, 512, nil, errIO},
		{"fast zero refused", cmdWriteZeroes, cmdFlagFastZero, 0, 512, nil, errNotSup},
		{"zero no-hole", cmdWriteZeroes, cmdFlagNoHole, 0, 512, nil, 0},
		{"trim", cmdTrim, 0, 0, 4096, nil, 0},
		{"cache", cmdCache, 0, 0, 4096, nil, 0},
		{"cache past end", cmdCache, 0, 1 << 20, 4096, nil, errInval},
		{"still alive", cmdRead, 0, 0, 512, nil, 0},
	}
	for i, st := range steps {
		c.request(st.typ, st.flags, uint64(i), st.off, st.length, st.payload)
		e, ck := c.simple()
		if e != st.want || ck != uint64(i) {
			t.Fatalf("%s: errno %d cookie %d, want %d cookie %d", st.name, e, ck, st.want, i)
		}
		if e == 0 && st.typ == cmdRead {
			c.read(int(st.length))
		}
	}
	m.mu.Lock()
	zeroes := strings.Join(m.zeroes, ";")
	m.mu.Unlock()
	if got := zeroes; got != "nohole=false fast=true;nohole=true fast=false" {
		t.Fatalf("zero flags passed: %s", got)
	}
	if s.Stats().Panics.Load() != 1 {
		t.Fatal("panic not counted")
	}
	// A write too long to skip closes the connection.
	c.request(cmdWrite, 0, 99, 0, maxPayloadSkip+1, nil)
	c.expectClosed()

	// Read-only export: EPERM and the READ_ONLY flag, no write-side flags.
	ro := dial(t, sock)
	_, flags := ro.connect("ro", false)
	if flags&tfReadOnly == 0 || flags&(tfSendTrim|tfSendWriteZeroes|tfSendFUA) != 0 {
		t.Fatalf("read-only flags %#x", flags)
	}
	for i, typ := range []uint16{cmdWrite, cmdTrim, cmdWriteZeroes} {
		var payload []byte
		if typ == cmdWrite {
			payload = make([]byte, 512)
		}
		ro.request(typ, 0, uint64(i), 0, 512, payload)
		if e, _ := ro.simple(); e != errPerm {
			t.Fatalf("read-only cmd %d: errno %d", typ, e)
		}
	}
	// Bad request magic closes.
	ro.write(make([]byte, 28))
	ro.expectClosed()
	if s.Stats().ProtocolErrors.Load() != 2 {
		t.Fatalf("protocol errors = %d, want 2", s.Stats().ProtocolErrors.Load())
	}
}

// blockingExport serves export "a" whose reads at offset 0 wait until
// m.block is closed, and connects a client to it.
func blockingExport(t *testing.T) (*memExport, *Server, *client) {
	m := newMem(1 << 20)
	m.blockAt = 0
	m.block = make(chan struct{})
	s, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	return m, s, c
}

// Replies come back in completion order, not request order.
func TestRepliesOutOfOrder(t *testing.T) {
	m, _, c := blockingExport(t)
	c.request(cmdRead, 0, 1, 0, 512, nil) // blocks
	c.request(cmdWrite, 0, 2, 4096, 512, make([]byte, 512))
	if e, ck := c.simple(); e != 0 || ck != 2 {
		t.Fatalf("first reply: errno %d cookie %d, want the write (2)", e, ck)
	}
	close(m.block)
	if e, ck := c.simple(); e != 0 || ck != 1 {
		t.Fatalf("second reply: errno %d cookie %d", e, ck)
	}
	c.read(512)
}

// Requests that arrive together are served as one batch by one goroutine.
// When the first blocks, the stall watch hands the rest to goroutines of
// their own and another worker goes on reading: they are answered while it
// still blocks.
func TestStalledBatchIsRescued(t *testing.T) {
	m, s, c := blockingExport(t)
	b := requestBytes(nil, cmdRead, 0, 100, 0, 512, nil) // blocks
	for i := uint64(1); i <= 8; i++ {
		b = requestBytes(b, cmdWrite, 0, i, i*4096, 512, bytes.Repeat([]byte{byte(i)}, 512))
	}
	c.write(b)
	for range 8 {
		if e, ck := c.simple(); e != 0 || ck < 1 || ck > 8 {
			t.Fatalf("reply: errno %d cookie %d, want a write (1-8)", e, ck)
		}
	}
	// Requests sent after the stall are read and served too.
	c.request(cmdRead, 0, 9, 3*4096, 512, nil)
	if e, ck := c.simple(); e != 0 || ck != 9 {
		t.Fatalf("read after the stall: errno %d cookie %d", e, ck)
	}
	if got := c.read(512); !bytes.Equal(got, bytes.Repeat([]byte{3}, 512)) {
		t.Fatalf("read back % x...", got[:8])
	}
	if s.Stats().Stalls.Load() == 0 {
		t.Fatal("no stall counted")
	}
	close(m.block)
	if e, ck := c.simple(); e != 0 || ck != 100 {
		t.Fatalf("blocked read: errno %d cookie %d", e, ck)
	}
	c.read(512)
}

// A write's payload is served from the read buffer without a copy. When
// that write stalls and another worker reads on (well past the buffer's
// size), the stalled write must still get its own data, not bytes read
// later into the same memory.
func TestStalledWriteKeepsItsPayload(t *testing.T) {
	m, s, c := blockingExport(t)
	want := bytes.Repeat([]byte{0xa5}, 4096)
	c.request(cmdWrite, 0, 100, 0, 4096, want) // blocks
	waitUntil(t, func() bool { return s.Stats().Stalls.Load() > 0 })
	const n = 40 // 40 x 64 KiB: ten times the read buffer
	var b []byte
	for i := uint64(1); i <= n; i++ {
		b = requestBytes(b, cmdWrite, 0, i, 4096+(i%8)*65536, 65536, bytes.Repeat([]byte{byte(i)}, 65536))
	}
	c.write(b)
	for range n {
		if e, ck := c.simple(); e != 0 || ck < 1 || ck > n {
			t.Fatalf("reply: errno %d cookie %d", e, ck)
		}
	}
	close(m.block)
	if e, ck := c.simple(); e != 0 || ck != 100 {
		t.Fatalf("stalled write: errno %d cookie %d", e, ck)
	}
	c.request(cmdRead, 0, 101, 0, 4096, nil)
	if e, _ := c.simple(); e != 0 {
		t.Fatalf("read back: errno %d", e)
	}
	if got := c.read(4096); !bytes.Equal(got, want) {
		t.Fatalf("stalled write stored % x..., want a5 a5...", got[:8])
	}
}

// A backend slower than the stall watch's tick (every write takes 3 ms)
// makes every batch a "stall". Once serving is spread over workers, a
// batch of one has nothing to hand out and a reader already exists, so
// the watch must leave it alone: it used to start another worker each
// time, which never left (over 700 goroutines a second under fio).
func TestSlowBackendDoesNotPileUpWorkers(t *testing.T) {
	m := newMem(1 << 20)
	m.delay = 3 * time.Millisecond
	_, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	const depth, total = 4, 80
	p := make([]byte, 4096)
	for i := range uint64(depth) {
		c.request(cmdWrite, 0, i, i*4096, 4096, p)
	}
	var base int
	for i := uint64(depth); i < total+depth; i++ {
		if e, _ := c.simple(); e != 0 {
			t.Fatalf("write: errno %d", e)
		}
		if i == 3*depth {
			base = runtime.NumGoroutine() // settled in spreading mode
		}
		if i < total {
			c.request(cmdWrite, 0, i, (i%64)*4096, 4096, p)
		}
	}
	if n := runtime.NumGoroutine(); n > base+2*depth {
		t.Fatalf("%d goroutines after %d slow writes, %d after the first %d: workers pile up", n, total, base, 3*depth)
	}
}

// A request past either bound waits in acquire, and is let in once a
// release makes room for it, not before: not while a release leaves too
// little room.
func TestBudgetBoundsInFlight(t *testing.T) {
	b := budget{maxN: 3, maxBytes: 1000}
	got := make(chan bool, 1)
	// asleep waits until a reader has gone to wait on the budget's cond
	// for the nth time: it is then blocked in acquire, not admitted, and
	// only a release or close wakes it.
	asleep := func(n int, why string) {
		t.Helper()
		waitUntil(t, func() bool {
			select {
			case ok := <-got:
				t.Fatalf("admitted (%v) %s", ok, why)
			default:
			}
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.sleeps == n
		})
	}
	admitted := func(why string) {
		t.Helper()
		select {
		case ok := <-got:
			if !ok {
				t.Fatalf("acquire failed %s", why)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("not admitted %s", why)
		}
	}
	if !b.acquire(600) || !b.acquire(0) || !b.acquire(0) {
		t.Fatal("acquire failed")
	}
	go func() { got <- b.acquire(300) }() // its bytes fit, the count does not
	asleep(1, "past the count bound")
	b.release(0)
	admitted("once the count fits")

	b.release(0)                          // 2 requests, 900 bytes
	go func() { got <- b.acquire(500) }() // the count fits, its bytes do not
	asleep(2, "past the byte bound")
	b.release(300) // 600 bytes left: still no room for 500
	asleep(3, "after a release that left too little room")
	b.release(600) // room at last
	admitted("once its bytes fit")
	if b.n != 1 || b.bytes != 500 {
		t.Fatalf("budget holds %d requests, %d bytes; want 1, 500", b.n, b.bytes)
	}
	b.close()
	if b.acquire(0) {
		t.Fatal("acquire after close")
	}
}

func TestShutdownFinishesInFlight(t *testing.T) {
	m, s, c := blockingExport(t)
	c.request(cmdRead, 0, 1, 0, 512, nil)
	waitUntil(t, func() bool { return s.InFlight(m) == 1 })
	if s.Connections(m) != 1 {
		t.Fatalf("connections = %d", s.Connections(m))
	}
	shut := make(chan error)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// Shutdown has begun for this connection once it has been told to stop
	// reading: only then is the blocked read in flight during a shutdown.
	// (A connection gone by then was ended, not shut down: the reply below
	// then fails the test.)
	waitUntil(t, func() bool {
		cs := s.connsOf(m)
		return s.closing() && (len(cs) == 0 || cs[0].stopped.Load())
	})
	close(m.block)
	if e, ck := c.simple(); e != 0 || ck != 1 {
		t.Fatalf("in-flight read after shutdown began: %d %d", e, ck)
	}
	c.read(512)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
	if m.flushes.Load() != 1 {
		t.Fatal("shutdown did not flush")
	}
}

func TestDisconnectExport(t *testing.T) {
	m := newMem(1 << 20)
	m.blockAt = 0
	m.block = make(chan struct{})
	s, sock := startServer(t, testExports{"a": m, "b": newMem(512)}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	other := dial(t, sock)
	other.connect("b", false)
	c.request(cmdRead, 0, 1, 0, 512, nil) // waits; Disconnect cancels it
	waitUntil(t, func() bool { return s.InFlight(m) == 1 })
	if n := s.Disconnect(m); n != 1 {
		t.Fatalf("Disconnect ended %d connections", n)
	}
	c.expectClosed()
	if s.Connections(m) != 0 || m.opened.Load() != 0 {
		t.Fatal("connection or export still held")
	}
	other.request(cmdRead, 0, 1, 0, 512, nil)
	if e, _ := other.simple(); e != 0 {
		t.Fatal("other export's connection was hurt")
	}
}

// An export the handshake opened is released when the handshake then
// fails: a client that selects an export and goes away before the reply
// must not leave it counted as open (the daemon would call its device
// busy for good).
func TestHandshakeFailureReleasesExport(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  []byte
	}{
		{"export_name", optBytes(optExportName, []byte("a"))},
		{"go", optBytes(optGo, infoData("a"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMem(64 << 10)
			srv := &Server{Exports: testExports{"a": m}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			server, client := net.Pipe()
			c := newConn(srv, server)
			done := make(chan struct{})
			go func() {
				c.serve()
				close(done)
			}()
			if _, err := io.ReadFull(client, make([]byte, 18)); err != nil {
				t.Fatal(err)
			}
			// A pipe's write returns once the server has read it all; the
			// server's reply then finds the client gone.
			if _, err := client.Write(append(binary.BigEndian.AppendUint32(nil, clientFixedNewstyle|clientNoZeroes), tc.opt...)); err != nil {
				t.Fatal(err)
			}
			client.Close()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the connection did not end")
			}
			if n := m.opened.Load(); n != 0 {
				t.Fatalf("export still open %d times after its handshake failed", n)
			}
		})
	}
}
