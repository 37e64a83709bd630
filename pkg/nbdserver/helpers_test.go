package nbdserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// memExport is an in-memory export with knobs for the error paths.
type memExport struct {
	mu      sync.RWMutex
	data    []byte
	holes   map[int64]bool // 4 KiB blocks that are holes (for Extents)
	flushes atomic.Int64
	failOn  int64         // offset whose I/O fails: EIO (read), ENOSPC (write), ENOTSUP (trim), EOVERFLOW (zero)
	panicOn int64         // offset whose read panics
	block   chan struct{} // reads and writes at offset blockAt wait on it
	blockAt int64         //
	delay   time.Duration // every write takes this long
	zeroes  []string      // flags of each Zero call
	opened  atomic.Int64
	as      Export // what Open hands out instead of m (a wrapper of m)
	// minBlock is the MinBlockSize Info gives; noTrim its NoTrim.
	minBlock uint32
	noTrim   bool
	// noZeroes is its NoWriteZeroes.
	noZeroes bool
}

func newMem(size int) *memExport {
	return &memExport{data: make([]byte, size), failOn: -1, panicOn: -1, blockAt: -1, holes: map[int64]bool{}}
}

func (m *memExport) Size() int64 { return int64(len(m.data)) }
func (m *memExport) ReadAt(ctx context.Context, p []byte, off int64) error {
	if off == m.panicOn {
		panic("test panic")
	}
	if off == m.failOn {
		return fmt.Errorf("mem: %w", syscall.EIO)
	}
	if off == m.blockAt {
		select {
		case <-m.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if off+int64(len(p)) > int64(len(m.data)) {
		return fmt.Errorf("mem: past end: %w", syscall.EINVAL)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	copy(p, m.data[off:])
	return nil
}
func (m *memExport) WriteAt(ctx context.Context, p []byte, off int64) error {
	if off == m.failOn {
		return fmt.Errorf("mem: %w", syscall.ENOSPC)
	}
	if off == m.blockAt {
		select {
		case <-m.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	time.Sleep(m.delay)
	m.mu.Lock()
	defer m.mu.Unlock()
	copy(m.data[off:], p)
	return nil
}
func (m *memExport) Flush(context.Context) error { m.flushes.Add(1); return nil }
func (m *memExport) Trim(_ context.Context, off, n int64) error {
	if off == m.failOn {
		return fmt.Errorf("mem: %w", syscall.ENOTSUP)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.data[off : off+n])
	return nil
}
func (m *memExport) Zero(_ context.Context, off, n int64, noHole, fast bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.zeroes = append(m.zeroes, fmt.Sprintf("nohole=%v fast=%v", noHole, fast))
	if fast {
		return fmt.Errorf("mem: %w", syscall.ENOTSUP)
	}
	if off == m.failOn {
		return fmt.Errorf("mem: %w", syscall.EOVERFLOW)
	}
	clear(m.data[off : off+n])
	return nil
}
func (m *memExport) Extents(_ context.Context, off, n int64, emit func(int64, uint32) bool) error {
	for pos := off; pos < off+n; {
		end := min((pos/4096+1)*4096, off+n)
		var f uint32
		if m.holes[pos/4096] {
			f = 3
		}
		if !emit(end-pos, f) {
			return nil
		}
		pos = end
	}
	return nil
}

type testExports map[string]*memExport

func (e testExports) List() []ExportInfo {
	var out []ExportInfo
	for n, m := range e {
		out = append(out, ExportInfo{Name: n, Description: "desc of " + n, Size: m.Size(), ReadOnly: n == "ro"})
	}
	return out
}
func (e testExports) Info(name string) (ExportInfo, bool) {
	m, ok := e[name]
	if !ok {
		return ExportInfo{}, false
	}
	return ExportInfo{Name: name, Description: "desc of " + name, Size: m.Size(), ReadOnly: name == "ro", MinBlockSize: m.minBlock, NoTrim: m.noTrim, NoWriteZeroes: m.noZeroes}, true
}
func (e testExports) Open(name string) (Export, func(), error) {
	m, ok := e[name]
	if !ok {
		return nil, nil, ErrUnknownExport
	}
	m.opened.Add(1)
	var exp Export = m
	if m.as != nil {
		exp = m.as
	}
	return exp, func() { m.opened.Add(-1) }, nil
}

// startServer serves exports on a UNIX socket in a temp dir.
func startServer(t *testing.T, exports Exports, tweak func(*Server)) (*Server, string) {
	t.Helper()
	return startServerOn(t, "unix", exports, tweak)
}

// forgetServiceTimes sets every connection's measured service time
// (serviceNs) back to none, so that its next batch may take up to maxBatch
// requests: for a test that counts what one batch holds, which must not
// depend on how long an earlier request took on a loaded machine. Call it
// between round trips, when no batch is being served.
func forgetServiceTimes(s *Server) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.serviceNs.Store(0)
	}
}

// startServerOn serves exports on a UNIX socket in a temp dir ("unix") or
// on a free loopback TCP port ("tcp"), and returns its address.
func startServerOn(t *testing.T, network string, exports Exports, tweak func(*Server)) (*Server, string) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "nbd.sock")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	s := &Server{Exports: exports, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if tweak != nil {
		tweak(s)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return s, addr
}
