package nbdclient

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/pkg/nbdserver"
)

// memExport is an in-memory nbdserver.Export with hooks for the tests: a
// gate that holds requests back, an offset that fails, and counters.
type memExport struct {
	mu      sync.RWMutex
	data    []byte
	holes   map[int64]bool // 4 KiB blocks reported as holes
	flushes int
	zeroes  []string
	gate    chan struct{} // when set, reads and writes wait for it to close
	failAt  int64         // -1: none
}

func newMem(size int) *memExport {
	return &memExport{data: make([]byte, size), holes: map[int64]bool{}, failAt: -1}
}

func (m *memExport) wait(ctx context.Context) error {
	m.mu.RLock()
	g := m.gate
	m.mu.RUnlock()
	if g == nil {
		return nil
	}
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *memExport) setGate(g chan struct{}) { m.mu.Lock(); m.gate = g; m.mu.Unlock() }

func (m *memExport) Size() int64 { return int64(len(m.data)) }
func (m *memExport) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := m.wait(ctx); err != nil {
		return err
	}
	if off == m.failAt {
		return fmt.Errorf("mem: %w", syscall.EIO)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	copy(p, m.data[off:])
	return nil
}
func (m *memExport) WriteAt(ctx context.Context, p []byte, off int64) error {
	if err := m.wait(ctx); err != nil {
		return err
	}
	if off == m.failAt {
		return fmt.Errorf("mem: %w", syscall.ENOSPC)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	copy(m.data[off:], p)
	return nil
}
func (m *memExport) Flush(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.flushes++
	return nil
}
func (m *memExport) Trim(_ context.Context, off, n int64) error {
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
	clear(m.data[off : off+n])
	return nil
}
func (m *memExport) Extents(_ context.Context, off, n int64, emit func(int64, uint32) bool) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
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

// exports serves memExports by name; "ro" is read-only.
type exports map[string]*memExport

func (e exports) List() []nbdserver.ExportInfo {
	var out []nbdserver.ExportInfo
	for n := range e {
		i, _ := e.Info(n)
		out = append(out, i)
	}
	return out
}
func (e exports) Info(name string) (nbdserver.ExportInfo, bool) {
	m, ok := e[name]
	if !ok {
		return nbdserver.ExportInfo{}, false
	}
	return nbdserver.ExportInfo{Name: name, Size: m.Size(), ReadOnly: name == "ro"}, true
}
func (e exports) Open(name string) (nbdserver.Export, func(), error) {
	m, ok := e[name]
	if !ok {
		return nil, nil, nbdserver.ErrUnknownExport
	}
	return m, func() {}, nil
}

// testServer is gdm's own NBD server on a UNIX socket, which a test can
// stop and start again on the same path.
type testServer struct {
	t    *testing.T
	path string
	exp  exports
	srv  *nbdserver.Server
	done chan struct{}
}

func startServer(t *testing.T, exp exports) *testServer {
	s := &testServer{t: t, path: filepath.Join(t.TempDir(), "nbd.sock"), exp: exp}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) start() {
	l, err := net.Listen("unix", s.path)
	if err != nil {
		s.t.Fatal(err)
	}
	s.srv = &nbdserver.Server{Exports: s.exp}
	s.done = make(chan struct{})
	srv, done := s.srv, s.done
	go func() { srv.Serve(l); close(done) }()
}

// stop closes the listener and every connection, and waits for Serve.
func (s *testServer) stop() {
	if s.srv == nil {
		return
	}
	s.srv.Close()
	<-s.done
	s.srv = nil
}

// dial connects a client to export name with opts' bounds.
func (s *testServer) dial(t *testing.T, name string, opts Options) *Client {
	t.Helper()
	opts.Network, opts.Address, opts.Export = "unix", s.path, name
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// at copies n bytes of the export at off, under its lock.
func (m *memExport) at(off, n int) []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return bytes.Clone(m.data[off : off+n])
}

func (m *memExport) zeroList() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.zeroes)
}
