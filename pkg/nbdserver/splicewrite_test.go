package nbdserver

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// spliceLeg is a legExport that also takes writes from a pipe
// (SpliceWriter), reading the pipe on the leg's goroutine as a remote's
// writer would splice it.
type spliceLeg struct {
	*legExport
	refuseSplice atomic.Bool  // SpliceWriteAsync reports false
	fail         atomic.Bool  // spliced writes fail, taking half the pipe's bytes
	spliced      atomic.Int64 // spliced writes completed
	tails        atomic.Int64 // of those, writes with a tail in memory
}

var _ SpliceWriter = (*spliceLeg)(nil)

func newSpliceLeg(t *testing.T, m *memExport) *spliceLeg {
	l := &spliceLeg{legExport: newLeg(t, m)}
	m.as = l
	return l
}

func (l *spliceLeg) MaySpliceWrite(off, n int64) bool { return true }

func (l *spliceLeg) SpliceWriteAsync(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64, done func(error)) bool {
	if l.refuseSplice.Load() {
		return false
	}
	l.jobs <- func() {
		p := make([]byte, inPipe)
		var err error
		if l.fail.Load() {
			err = readAll(pipe, p[:inPipe/2])
			if err == nil {
				err = fmt.Errorf("leg: %w", syscall.EIO)
			}
		} else if err = readAll(pipe, p); err == nil {
			err = l.memExport.WriteAt(ctx, append(p, tail...), off)
		}
		if len(tail) > 0 {
			l.tails.Add(1)
		}
		l.spliced.Add(1)
		done(err)
	}
	return true
}

// serveSpliceLeg serves a memory export of size bytes behind a spliceLeg,
// and connects a client to it.
func serveSpliceLeg(t *testing.T, size int) (*memExport, *spliceLeg, *Server, *client) {
	m := newMem(size)
	leg := newSpliceLeg(t, m)
	s, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	return m, leg, s, c
}

// memData is a copy of m's bytes, taken under its lock (the leg writes
// them on its own goroutine).
func memData(m *memExport) []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return bytes.Clone(m.data)
}

// TestSpliceWriteServed: large writes to an export that takes them from a
// pipe land whole, with small writes between them, and leave no pipe
// behind but the idle ones; one the export refuses is copied out of its
// pipe and served the usual way; one that fails is answered EIO and its
// pipe, holding the rest of the data, is closed, not reused.
func TestSpliceWriteServed(t *testing.T) {
	m, leg, s, c := serveSpliceLeg(t, 8<<20)
	want := make([]byte, len(m.data))
	cookie := uint64(0)
	write := func(off uint64, n int, wantErr uint32) {
		t.Helper()
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rand.Uint32())
		}
		cookie++
		c.request(cmdWrite, 0, cookie, off, uint32(n), p)
		if errno, got := c.simple(); errno != wantErr || got != cookie {
			t.Fatalf("write of %d at %d: errno %d cookie %d", n, off, errno, got)
		}
		if wantErr == 0 {
			copy(want[off:], p)
		}
	}
	for i, n := range []int{1 << 20, 128 << 10, 4096, 1 << 20, 65537} {
		write(uint64(i)<<20+512, n, 0)
	}
	if !bytes.Equal(memData(m), want) {
		t.Fatal("the writes did not land as sent")
	}
	if n := s.Stats().SplicedWrites.Load(); n != 4 || leg.spliced.Load() != 4 {
		t.Fatalf("%d writes spliced, %d by the leg; want the 4 over 64 KiB", n, leg.spliced.Load())
	}
	open := s.pipes.Open()

	leg.refuseSplice.Store(true)
	write(6<<20, 1<<20, 0)
	if !bytes.Equal(memData(m), want) || s.Stats().SplicedWrites.Load() != 4 || s.pipes.Open() != open {
		t.Fatalf("a refused spliced write: landed %v, %d spliced, %d pipes open (want %d)",
			bytes.Equal(memData(m), want), s.Stats().SplicedWrites.Load(), s.pipes.Open(), open)
	}
	leg.refuseSplice.Store(false)

	leg.fail.Store(true)
	write(6<<20, 1<<20, errIO)
	if s.pipes.Open() != open-1 {
		t.Fatalf("%d pipes open after a failed spliced write, want %d (its pipe closed)", s.pipes.Open(), open-1)
	}
	leg.fail.Store(false)
	write(7<<20, 1<<20, 0)
	if !bytes.Equal(memData(m), want) {
		t.Fatal("a write after a failed one did not land")
	}
}

// TestSpliceWriteTrickled: a payload that arrives in many small pieces
// fills the pipe's slots (one a piece) before its bytes: the rest is read
// into memory as the write's tail, and it lands whole.
func TestSpliceWriteTrickled(t *testing.T) {
	m, leg, s, c := serveSpliceLeg(t, 2<<20)
	p := make([]byte, 1<<20)
	for i := range p {
		p[i] = byte(rand.Uint32())
	}
	req := requestBytes(nil, cmdWrite, 0, 1, 4096, uint32(len(p)), p)
	for b := req; len(b) > 0; {
		k := min(len(b), 100)
		c.write(b[:k])
		b = b[k:]
	}
	if errno, cookie := c.simple(); errno != 0 || cookie != 1 {
		t.Fatalf("trickled write: errno %d cookie %d", errno, cookie)
	}
	if !bytes.Equal(memData(m)[4096:4096+len(p)], p) {
		t.Fatal("the trickled write did not land as sent")
	}
	if n := s.Stats().SplicedWrites.Load(); n != 1 || leg.tails.Load() != 1 {
		t.Fatalf("%d writes spliced, %d with a tail; want 1, with a tail", n, leg.tails.Load())
	}
}

// TestSpliceWritePipeBound: spliced writes take their pipes from the same
// bounded pool as spliced reads. With MaxPipes 1 and the first write's
// pipe held by the leg, the second write is refused a pipe (counted) and
// read into memory instead; both land.
func TestSpliceWritePipeBound(t *testing.T) {
	m := newMem(4 << 20)
	leg := newSpliceLeg(t, m)
	gate := make(chan struct{})
	leg.gate.Store(&gate)
	s, sock := startServer(t, testExports{"a": m}, func(s *Server) { s.MaxPipes = 1 })
	c := dial(t, sock)
	c.connect("a", false)
	first, second := bytes.Repeat([]byte{1}, 1<<20), bytes.Repeat([]byte{2}, 1<<20)
	c.write(requestBytes(requestBytes(nil, cmdWrite, 0, 1, 0, 1<<20, first), cmdWrite, 0, 2, 2<<20, 1<<20, second))
	testkit.WaitFor(t, 10*time.Second, "both writes at the leg", func() bool { return len(leg.jobs) == 1 && s.Stats().AsyncRequests.Load() == 2 })
	if n, refused := s.Stats().SplicedWrites.Load(), s.Stats().PipesRefused.Load(); n != 1 || refused != 1 || s.pipes.Open() != 1 {
		t.Fatalf("%d writes spliced, %d refused a pipe, %d pipes open; want 1, 1, 1", n, refused, s.pipes.Open())
	}
	close(gate)
	for range 2 {
		if errno, _ := c.simple(); errno != 0 {
			t.Fatalf("write: errno %d", errno)
		}
	}
	if d := memData(m); !bytes.Equal(d[:1<<20], first) || !bytes.Equal(d[2<<20:3<<20], second) {
		t.Fatal("the writes did not land")
	}
}
