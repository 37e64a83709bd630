package nbdserver

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"syscall"
	"testing"
)

// pipeMem is a memory export that also writes from pipes (PipeWriter), as
// a table over a local file does.
type pipeMem struct {
	*memExport
	decline atomic.Bool  // answer ErrNoSplice, taking nothing
	fail    atomic.Bool  // take half the pipe's bytes, then fail with EIO
	written atomic.Int64 // writes taken from a pipe
}

var _ PipeWriter = (*pipeMem)(nil)

func (p *pipeMem) MayWriteFromPipe(off, n int64) bool { return true }

func (p *pipeMem) WriteFromPipe(ctx context.Context, pipe int, inPipe int64, tail []byte, off int64) error {
	if p.decline.Load() {
		return fmt.Errorf("mem: %w", ErrNoSplice)
	}
	b := make([]byte, inPipe)
	if p.fail.Load() {
		if err := readAll(pipe, b[:inPipe/2]); err != nil {
			return err
		}
		return fmt.Errorf("mem: %w", syscall.EIO)
	}
	if err := readAll(pipe, b); err != nil {
		return err
	}
	p.written.Add(1)
	return p.memExport.WriteAt(ctx, append(b, tail...), off)
}

// servePipeMem serves a pipeMem of size bytes on network and connects a
// client to it.
func servePipeMem(t *testing.T, network string, size int) (*pipeMem, *Server, *client) {
	m := &pipeMem{memExport: newMem(size)}
	m.as = m
	s, addr := startServerOn(t, network, testExports{"a": m.memExport}, nil)
	c := dialNet(t, network, addr)
	c.connect("a", false)
	return m, s, c
}

// pipeWriter writes random data through c and keeps what m should hold.
type pipeWriter struct {
	t      *testing.T
	c      *client
	want   []byte
	cookie uint64
}

func (w *pipeWriter) write(off uint64, n int, wantErr uint32) {
	w.t.Helper()
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rand.Uint32())
	}
	w.cookie++
	w.c.request(cmdWrite, 0, w.cookie, off, uint32(n), p)
	if errno, got := w.c.simple(); errno != wantErr || got != w.cookie {
		w.t.Fatalf("write of %d at %d: errno %d cookie %d, want errno %d", n, off, errno, got, wantErr)
	}
	if wantErr == 0 {
		copy(w.want[off:], p)
	}
}

// TestPipeWriteServed: over TCP, large writes go through a pipe into the
// export (PipeWriter) and land whole, with small ones between them that do
// not; one the export declines is copied out of its pipe and written the
// usual way; one that fails halfway is answered EIO, its pipe (holding the
// rest) closed rather than reused, and the connection serves on.
func TestPipeWriteServed(t *testing.T) {
	m, s, c := servePipeMem(t, "tcp", 8<<20)
	w := &pipeWriter{t: t, c: c, want: make([]byte, 8<<20)}
	for i, n := range []int{1 << 20, 128 << 10, 4096, 1 << 20, 65537} {
		w.write(uint64(i)<<20+512, n, 0)
	}
	if !bytes.Equal(memData(m.memExport), w.want) {
		t.Fatal("the writes did not land as sent")
	}
	if n := s.Stats().PipeWrites.Load(); n != 4 || m.written.Load() != 4 {
		t.Fatalf("%d writes from pipes, %d taken by the export; want the 4 over 64 KiB", n, m.written.Load())
	}
	open := s.pipes.Open()

	m.decline.Store(true)
	w.write(6<<20, 1<<20, 0)
	if !bytes.Equal(memData(m.memExport), w.want) || m.written.Load() != 4 || s.pipes.Open() != open {
		t.Fatalf("a declined write: landed %v, %d from pipes, %d pipes open (want %d)",
			bytes.Equal(memData(m.memExport), w.want), m.written.Load(), s.pipes.Open(), open)
	}
	m.decline.Store(false)

	m.fail.Store(true)
	w.write(6<<20, 1<<20, errIO)
	if s.pipes.Open() != open-1 {
		t.Fatalf("%d pipes open after a failed write from a pipe, want %d (its pipe closed)", s.pipes.Open(), open-1)
	}
	m.fail.Store(false)
	w.write(7<<20, 1<<20, 0)
	if !bytes.Equal(memData(m.memExport), w.want) || m.written.Load() != 5 {
		t.Fatalf("a write after a failed one: landed %v, %d from pipes (want 5)", bytes.Equal(memData(m.memExport), w.want), m.written.Load())
	}
}

// A TCP connection starts writing large writes from pipes, a UNIX one
// reading them into memory (see startSetting): the first write, before
// the tuner has timed a window, shows the start.
func TestPipeWriteStartSetting(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			m, _, c := servePipeMem(t, network, 2<<20)
			w := &pipeWriter{t: t, c: c, want: make([]byte, 2<<20)}
			w.write(0, 1<<20, 0)
			if !bytes.Equal(memData(m.memExport), w.want) {
				t.Fatal("the write did not land as sent")
			}
			if got, want := m.written.Load() != 0, network == "tcp"; got != want {
				t.Fatalf("over %s the first 1 MiB write went through a pipe: %v, want %v", network, got, want)
			}
		})
	}
}

// A write refused by check (past the end) is refused with its pipe's
// payload read back, not written from the pipe; the next write lands.
func TestPipeWriteRefused(t *testing.T) {
	m, s, c := servePipeMem(t, "tcp", 2<<20)
	w := &pipeWriter{t: t, c: c, want: make([]byte, 2<<20)}
	open := s.pipes.Open()
	w.write(2<<20-512, 1<<20, errNoSpc)
	if m.written.Load() != 0 {
		t.Fatal("a write past the end was taken from its pipe")
	}
	w.write(0, 1<<20, 0)
	if !bytes.Equal(memData(m.memExport), w.want) || m.written.Load() != 1 || s.pipes.Open() < open {
		t.Fatalf("after a refused write: landed %v, %d from pipes", bytes.Equal(memData(m.memExport), w.want), m.written.Load())
	}
}
