package nbdserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
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
	testkit.WaitFor(t, 10*time.Second, "the export to be released", func() bool { return m.opened.Load() == 0 })
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
	// One run without REQ_ONE: one descriptor (carried in the header).
	c.request(cmdBlockStatus, 0, 7, 8192, 8192, nil)
	ch = c.chunk()
	want := binary.BigEndian.AppendUint32(nil, metaAllocationID)
	want = binary.BigEndian.AppendUint32(want, 8192) // blocks 2 and 3: data
	want = binary.BigEndian.AppendUint32(want, 0)
	if ch.typ != chunkBlockStatus || ch.cookie != 7 || !bytes.Equal(ch.payload, want) {
		t.Fatalf("one-run payload % x, want % x", ch.payload, want)
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
		// NBD_ENOTSUP and NBD_EOVERFLOW answer only a fast zero and a DF
		// read (proto.md); from a backend elsewhere they are EINVAL.
		{"trim ENOTSUP from the backend", cmdTrim, 0, 4096, 512, nil, errInval},
		{"zero EOVERFLOW from the backend", cmdWriteZeroes, 0, 4096, 512, nil, errInval},
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
	if got := zeroes; got != "nohole=false fast=false;nohole=false fast=true;nohole=true fast=false" {
		t.Fatalf("zero flags passed: %s", got)
	}
	if s.Stats().Panics.Load() != 1 {
		t.Fatal("panic not counted")
	}
	// A write too long to skip closes the connection.
	c.request(cmdWrite, 0, 99, 0, maxPayloadSkip+1, nil)
	c.expectClosed()

	ro := dial(t, sock)
	readOnlyRefusals(t, ro, "ro")
	// Bad request magic closes.
	ro.write(make([]byte, 28))
	ro.expectClosed()
	if s.Stats().ProtocolErrors.Load() != 2 {
		t.Fatalf("protocol errors = %d, want 2", s.Stats().ProtocolErrors.Load())
	}
}

// readOnlyRefusals connects c to the read-only export name and checks
// that it advertises READ_ONLY and no write-side flags, and refuses what
// writes with EPERM.
func readOnlyRefusals(t *testing.T, c *client, name string) {
	t.Helper()
	_, flags := c.connect(name, false)
	if flags&tfReadOnly == 0 || flags&(tfSendTrim|tfSendWriteZeroes|tfSendFUA) != 0 {
		t.Fatalf("read-only flags %#x", flags)
	}
	for i, typ := range []uint16{cmdWrite, cmdTrim, cmdWriteZeroes} {
		var payload []byte
		if typ == cmdWrite {
			payload = make([]byte, 512)
		}
		c.request(typ, 0, uint64(i), 0, 512, payload)
		if e, _ := c.simple(); e != errPerm {
			t.Fatalf("read-only cmd %d: errno %d", typ, e)
		}
	}
}

func TestShutdownFinishesInFlight(t *testing.T) {
	m, s, c := blockingExport(t)
	c.request(cmdRead, 0, 1, 0, 512, nil)
	testkit.WaitFor(t, 10*time.Second, "the read in flight", func() bool { return s.InFlight(m) == 1 })
	if s.Connections(m) != 1 {
		t.Fatalf("connections = %d", s.Connections(m))
	}
	shut := make(chan error)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// Shutdown has begun for this connection once it has been told to stop
	// reading: only then is the blocked read in flight during a shutdown.
	// (A connection gone by then was ended, not shut down: the reply below
	// then fails the test.)
	testkit.WaitFor(t, 10*time.Second, "the connection told to stop reading", func() bool {
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

// fuaExport is a memExport that writes FUA itself (FUAWriter), counting
// how often.
type fuaExport struct {
	*memExport
	fuaWrites atomic.Int64
}

func (f *fuaExport) WriteAtFUA(ctx context.Context, p []byte, off int64) error {
	f.fuaWrites.Add(1)
	return f.WriteAt(ctx, p, off)
}

// A FUA write goes to an export's own FUA write when it has one, with no
// flush of the whole export; a plain write does not.
func TestFUAWriteUsesTheExportsFUAWriter(t *testing.T) {
	m := newMem(1 << 20)
	f := &fuaExport{memExport: m}
	m.as = f
	_, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	data := bytes.Repeat([]byte{0x5a}, 512)
	c.request(cmdWrite, cmdFlagFUA, 1, 0, 512, data)
	c.request(cmdWrite, 0, 2, 512, 512, data)
	for range 2 {
		if e, _ := c.simple(); e != 0 {
			t.Fatal(e)
		}
	}
	if got := f.fuaWrites.Load(); got != 1 {
		t.Fatalf("FUA writes through WriteAtFUA = %d, want 1", got)
	}
	if got := m.flushes.Load(); got != 0 {
		t.Fatalf("flushes = %d, want 0 (the FUA writer made its write durable)", got)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !bytes.Equal(m.data[:1024], bytes.Repeat([]byte{0x5a}, 1024)) {
		t.Fatal("data not written")
	}
}

// syncExport is a memExport that tells a client's FLUSH (Flush) from the
// server's own flush at a disconnect (Sync).
type syncExport struct {
	*memExport
	syncs atomic.Int64
}

func (s *syncExport) Sync(context.Context) error { s.syncs.Add(1); return nil }

// An export with Sync gets it at DISC instead of Flush: the FLUSHes it
// sees are the client's.
func TestDiscSyncsASyncer(t *testing.T) {
	m := newMem(1 << 20)
	se := &syncExport{memExport: m}
	m.as = se
	_, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	c.request(cmdFlush, 0, 1, 0, 0, nil)
	if e, _ := c.simple(); e != 0 {
		t.Fatal(e)
	}
	c.request(cmdDisc, 0, 2, 0, 0, nil)
	c.expectClosed()
	testkit.WaitFor(t, 10*time.Second, "the export to be released", func() bool { return m.opened.Load() == 0 })
	if f, s := m.flushes.Load(), se.syncs.Load(); f != 1 || s != 1 {
		t.Fatalf("flushes %d, syncs %d: want the client's FLUSH as Flush and the DISC as Sync", f, s)
	}
}
