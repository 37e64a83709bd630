package nbdserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"golang.org/x/sys/unix"
)

// spliceReadLeg is a legExport that also splices large reads, as a
// remote leg's reader does: SpliceReadAsync fills the pipe on the leg's
// goroutine and completes there. SpliceRead (the usual way) fills it at
// once.
type spliceReadLeg struct {
	*legExport
	noSplice atomic.Bool  // answer ErrNoSplice, after writing part of the range
	declines atomic.Bool  // take no spliced read (SpliceReadAsync false)
	async    atomic.Int64 // spliced reads completed asynchronously
	usual    atomic.Int64 // spliced reads served the usual way
}

var (
	_ AsyncExport       = (*spliceReadLeg)(nil)
	_ AsyncSpliceReader = (*spliceReadLeg)(nil)
	_ SpliceReader      = (*spliceReadLeg)(nil)
)

// serveSpliceReadLeg serves size bytes of random data behind a
// spliceReadLeg.
func serveSpliceReadLeg(t *testing.T, size int, opt func(*Server)) (*memExport, *spliceReadLeg, *Server, string) {
	m := newMem(size)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range m.data {
		m.data[i] = byte(r.Uint32())
	}
	leg := &spliceReadLeg{legExport: newLeg(t, m)}
	m.as = leg
	s, sock := startServer(t, testExports{"a": m}, opt)
	return m, leg, s, sock
}

func (l *spliceReadLeg) SpliceRead(_ context.Context, pipe int, off, n int64) error {
	l.usual.Add(1)
	return writeAllPipe(pipe, l.bytes(off, n))
}

// bytes is a copy of n bytes at off (the leg's goroutine reads them while
// the server's write them).
func (l *spliceReadLeg) bytes(off, n int64) []byte {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return bytes.Clone(l.data[off : off+n])
}

func (l *spliceReadLeg) SpliceReadAsync(ctx context.Context, pipe int, off, n int64, done func(error)) bool {
	if l.refuse.Load() || l.declines.Load() {
		return false
	}
	l.jobs <- func() {
		l.legExport.done.Add(1)
		p := l.bytes(off, n)
		switch {
		case off == l.failOn:
			done(fmt.Errorf("leg: %w", syscall.EIO))
		case l.noSplice.Load():
			unix.Write(pipe, p[:512]) // a dirty pipe must not reach the client
			done(fmt.Errorf("leg: %w", ErrNoSplice))
		default:
			err := writeAllPipe(pipe, p)
			l.async.Add(1)
			done(err)
		}
	}
	return true
}

// writeAllPipe writes p into a pipe that has room for it.
func writeAllPipe(pipe int, p []byte) error {
	for len(p) > 0 {
		m, err := unix.Write(pipe, p)
		if err != nil {
			return err
		}
		p = p[m:]
	}
	return nil
}

// TestAsyncSplicedReads: large reads of an export that splices them
// asynchronously come back whole, among small reads and a write sent in
// the same go, in simple and structured replies. A read the leg fails is
// an error reply; one the leg did not splice (ErrNoSplice, after writing
// part of its pipe) is read again with ReadAt and its bytes arrive.
func TestAsyncSplicedReads(t *testing.T) {
	for _, structured := range []bool{false, true} {
		t.Run(fmt.Sprintf("structured=%v", structured), func(t *testing.T) {
			m, leg, s, sock := serveSpliceReadLeg(t, 8<<20, nil)
			m.failOn = 7 << 20
			c := dial(t, sock)
			c.connect("a", structured)
			sendMixedReads(t, c, structured, m.data)
			if n := leg.async.Load(); n == 0 || s.Stats().SplicedReads.Load() != uint64(n) || leg.usual.Load() != 0 {
				t.Fatalf("%d reads spliced asynchronously, %d counted, %d the usual way", n, s.Stats().SplicedReads.Load(), leg.usual.Load())
			}
			expectReadError(t, c, structured, 200, 7<<20, 256<<10)
			leg.noSplice.Store(true)
			before := s.Stats().SplicedReads.Load()
			if !bytes.Equal(readOne(c, structured, 201, 1<<20, 128<<10), m.data[1<<20:1<<20+128<<10]) ||
				s.Stats().SplicedReads.Load() != before {
				t.Fatal("the read not spliced returned other bytes, or was counted as spliced")
			}
		})
	}
}

// TestAsyncSplicedReadsUnreadClient: a client sends large and small reads
// and reads no reply until every one has completed on the leg. The
// spliced replies fill its socket part-way through one's data: the leg's
// goroutine never waits for it (the rest is carried), and once the client
// reads, every reply arrives whole and in the order the leg completed
// them (the order of the requests), the carried one first.
func TestAsyncSplicedReadsUnreadClient(t *testing.T) {
	m, leg, s, sock := serveSpliceReadLeg(t, 8<<20, func(s *Server) { s.WriteTimeout = -1 })
	c := dial(t, sock)
	c.connect("a", false)
	type req struct{ off, n int64 }
	var reqs []req
	var b []byte
	for i := range 24 { // 16 MiB of large reads: more than the socket buffers hold
		q := req{int64(i%7) << 20, 1 << 20}
		if i%3 == 2 {
			q = req{int64(i) << 12, 4096} // taken by the copying path
		}
		reqs = append(reqs, q)
		b = requestBytes(b, cmdRead, 0, uint64(i), uint64(q.off), uint32(q.n), nil)
	}
	c.write(b)
	testkit.WaitFor(t, 10*time.Second, "every read completed on the leg",
		func() bool { return leg.legExport.done.Load() == int64(len(reqs)) })
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	for i, q := range reqs {
		errno, cookie := c.simple()
		if errno != 0 || cookie != uint64(i) || !bytes.Equal(c.read(int(q.n)), m.data[q.off:q.off+q.n]) {
			t.Fatalf("reply %d: errno %d, cookie %d, or other data", i, errno, cookie)
		}
	}
	if n := s.Stats().SplicedReads.Load(); n != 16 {
		t.Fatalf("%d reads spliced, want 16", n)
	}
}

// TestNoWaitCarriesSplicedReply: a non-blocking write of a batch whose
// spliced reply the socket takes only in part leaves the rest of that
// reply's data in its pipe for the next writer (the carry) and puts the
// replies after it back in the queue; a no-wait write while the carry
// waits leaves them to it at once; the next writer sends the carry, then
// the queue, and the client reads every reply whole and in order.
func TestNoWaitCarriesSplicedReply(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := socketConn(t, fds[0])
	cli := socketConn(t, fds[1])
	srv.(*net.UnixConn).SetWriteBuffer(64 << 10) // takes a part of the spliced reply
	raw, _ := srv.(*net.UnixConn).SyscallConn()
	var c conn
	w := &c.writer
	*w = replyWriter{nc: srv, raw: raw, pipes: &pipePool{}, budget: &budget{maxN: 8, maxBytes: 64 << 20},
		failed: func(err error) { t.Errorf("write failed: %v", err) }}
	data := bytes.Repeat([]byte("gdm!"), 128<<10) // 512 KiB
	spliced := getReply(0)
	c.simpleReply(spliced, 1, 0)
	spliced.pipe, spliced.pipeLen = w.pipes.get(), len(data)
	if spliced.pipe == nil || writeAllPipe(spliced.pipe.w, data) != nil {
		t.Fatal("no pipe with the data")
	}
	small := getReply(0)
	c.simpleReply(small, 2, 0)
	small.data = data[:4096]
	last := getReply(0)
	c.simpleReply(last, 3, 0)
	w.pending = []*reply{spliced, small, last}

	w.wmu.Lock()
	ok := w.writeQueueNoWait()
	w.wmu.Unlock()
	if ok || w.carryPipe != spliced || spliced.pipeLen == 0 || len(w.pending) != 2 || w.pending[0] != small {
		t.Fatalf("no-wait write: ok %v, carried pipe %v with %d bytes left, %d queued", ok, w.carryPipe == spliced, spliced.pipeLen, len(w.pending))
	}
	// The carry's flusher is not running here: a no-wait write that
	// waited for it to take wmu (it once looped on TryLock) would spin
	// the leg's reader until then.
	returned := make(chan bool, 1)
	go func() { returned <- c.writeNoWait() }()
	select {
	case ok := <-returned:
		if !ok || len(w.pending) != 2 {
			t.Fatalf("no-wait write behind the carry: ok %v, %d queued (want true, 2 left to the flusher)", ok, len(w.pending))
		}
	case <-time.After(10 * time.Second):
		w.wmu.Lock() // its TryLock fails: it returns
		t.Fatal("a no-wait write behind a carry spun, waiting for the carry's flusher")
	}
	want := func(cookie uint64, payload []byte) error {
		var h [16]byte
		if _, err := io.ReadFull(cli, h[:]); err != nil || binary.BigEndian.Uint64(h[8:]) != cookie {
			return fmt.Errorf("reply %d: header %x (%v)", cookie, h, err)
		}
		got := make([]byte, len(payload))
		if _, err := io.ReadFull(cli, got); err != nil || !bytes.Equal(got, payload) {
			return fmt.Errorf("reply %d: other data (%v)", cookie, err)
		}
		return nil
	}
	cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	read := make(chan error, 1)
	go func() { // the client reads
		read <- errors.Join(want(1, data), want(2, data[:4096]), want(3, nil), want(4, nil))
	}()
	later := getReply(0)
	c.simpleReply(later, 4, 0)
	w.queue([]*reply{later}) // wmu is free: it writes the carry, then the queue
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	if w.carried != nil || w.pipes.Open() != 1 {
		t.Fatalf("after: carry left %v, %d pipes open (want the emptied one, idle)", w.carried != nil, w.pipes.Open())
	}
}

// socketConn makes a net.Conn of socket fd.
func socketConn(t *testing.T, fd int) net.Conn {
	f := os.NewFile(uintptr(fd), "socket")
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// TestAsyncSplicedReadsPipeBound: asynchronous spliced reads take their
// pipes from the server's bounded pool. With one pipe allowed and the leg
// holding the read that took it, a second large read gets no pipe and is
// started into memory instead of waiting for one or opening another;
// both reads come back whole.
func TestAsyncSplicedReadsPipeBound(t *testing.T) {
	m, leg, s, sock := serveSpliceReadLeg(t, 4<<20, func(s *Server) { s.MaxPipes = 1 })
	gate := make(chan struct{})
	leg.gate.Store(&gate)
	c := dial(t, sock)
	c.connect("a", false)
	c.write(requestBytes(requestBytes(nil, cmdRead, 0, 1, 0, 1<<20, nil), cmdRead, 0, 2, 2<<20, 1<<20, nil))
	testkit.WaitFor(t, 10*time.Second, "both reads started", func() bool { return s.Stats().AsyncRequests.Load() == 2 })
	if n, open := s.Stats().SplicedReads.Load(), s.pipes.Open(); n != 1 || open != 1 || s.Stats().PipesRefused.Load() == 0 {
		t.Fatalf("%d reads spliced, %d pipes open, %d refused a pipe; want 1, 1, some", n, open, s.Stats().PipesRefused.Load())
	}
	close(gate)
	want := map[uint64][]byte{1: m.data[:1<<20], 2: m.data[2<<20 : 3<<20]}
	for range 2 {
		errno, cookie := c.simple()
		if errno != 0 || want[cookie] == nil || !bytes.Equal(c.read(1<<20), want[cookie]) {
			t.Fatalf("read: errno %d, cookie %d, or other data", errno, cookie)
		}
		delete(want, cookie)
	}
}

// TestLargeReadAsyncWhereNotSpliced: an export that takes asynchronous
// reads but declines to splice one (a block device read with O_DIRECT,
// crypt) still gets a large read asynchronously, into memory; before, it
// was served the usual way, blocking a worker for it.
func TestLargeReadAsyncWhereNotSpliced(t *testing.T) {
	m, leg, s, sock := serveSpliceReadLeg(t, 4<<20, nil)
	leg.declines.Store(true)
	c := dial(t, sock)
	c.connect("a", false)
	c.request(cmdRead, 0, 1, 1<<20, 1<<20, nil)
	if errno, _ := c.simple(); errno != 0 || !bytes.Equal(c.read(1<<20), m.data[1<<20:2<<20]) {
		t.Fatalf("read: errno %d, or other data", errno)
	}
	if a, sp, usual := s.Stats().AsyncRequests.Load(), s.Stats().SplicedReads.Load(), leg.usual.Load(); a != 1 || sp != 0 || usual != 0 {
		t.Fatalf("%d requests async, %d spliced, %d spliced the usual way; want 1, 0, 0", a, sp, usual)
	}
}
