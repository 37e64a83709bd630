// Package nbdtest serves in-memory exports with gdm's own NBD server on a
// UNIX socket, for the tests of NBD clients (pkg/nbdclient, and remote
// backing devices in pkg/targets). A test can hold requests back, fail one
// offset, and stop and start the server on the same socket.
package nbdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/gdm-project/gdm/pkg/nbdserver"
)

// Mem is an in-memory nbdserver.Export. Extents reports 4 KiB blocks
// marked with SetHole as holes (flags 3), the rest as data. With
// SetMinBlock it advertises a minimum block size and refuses requests not
// aligned to it, as a server of 4 KiB blocks may.
type Mem struct {
	mu       sync.RWMutex // guards the fields below
	data     []byte
	minBlock uint32 // 0: any request
	holes    map[int64]bool
	flushes  int
	zeroes   []string
	gate     chan struct{} // when set, reads and writes wait for it to close
	failAt   int64         // -1: none
	failErr  syscall.Errno
	flushErr syscall.Errno // 0: flushes succeed
	refusals atomic.Int64  // requests refused for their alignment
	gated    atomic.Int64  // reads and writes waiting for the gate now
	// noTrim and noZeroes leave TRIM and WRITE_ZEROES out of what the
	// export advertises (SetCaps).
	noTrim, noZeroes bool
}

// NewMem makes a zeroed export of size bytes.
func NewMem(size int) *Mem {
	return &Mem{data: make([]byte, size), holes: map[int64]bool{}, failAt: -1}
}

// SetGate makes reads and writes wait until g is closed (nil: no wait).
func (m *Mem) SetGate(g chan struct{}) { m.mu.Lock(); m.gate = g; m.mu.Unlock() }

// Gated counts the reads and writes waiting for the gate now: a test
// knows from it that a request reached the server, not just the client.
func (m *Mem) Gated() int { return int(m.gated.Load()) }

// FailAt makes reads and writes at off fail with errno (off -1: none).
func (m *Mem) FailAt(off int64, errno syscall.Errno) {
	m.mu.Lock()
	m.failAt, m.failErr = off, errno
	m.mu.Unlock()
}

// FailFlush makes every FLUSH fail with errno (0: none). The server
// answers EINVAL for an ENOTSUP, as it answers any request but a fast
// zero (nbdserver's replyCode).
func (m *Mem) FailFlush(errno syscall.Errno) { m.mu.Lock(); m.flushErr = errno; m.mu.Unlock() }

// SetMinBlock makes the export advertise b (a power of 2) as its
// minimum block size to clients that connect later, and refuse with
// EINVAL every read, write, trim and zero whose offset or length is not a
// multiple of it (0: any request, the default). Refusals counts them.
func (m *Mem) SetMinBlock(b uint32) { m.mu.Lock(); m.minBlock = b; m.mu.Unlock() }

// SetCaps makes the export advertise TRIM and WRITE_ZEROES (both by
// default) to clients that connect later, as a server over a disk without
// discard or write-zeroes may not.
func (m *Mem) SetCaps(trim, zeroes bool) {
	m.mu.Lock()
	m.noTrim, m.noZeroes = !trim, !zeroes
	m.mu.Unlock()
}

// Refusals counts the requests refused for their alignment (SetMinBlock).
func (m *Mem) Refusals() int { return int(m.refusals.Load()) }

// alignedLocked refuses a request not aligned to the minimum block size;
// m.mu must be held (for reading at least).
func (m *Mem) alignedLocked(off, n int64) error {
	if b := int64(m.minBlock); b > 1 && (off%b != 0 || n%b != 0) {
		m.refusals.Add(1)
		return fmt.Errorf("mem: [%d,+%d) not aligned to the minimum block size %d: %w", off, n, b, syscall.EINVAL)
	}
	return nil
}

// SetHole reports 4 KiB block b as a hole.
func (m *Mem) SetHole(b int64) { m.mu.Lock(); m.holes[b] = true; m.mu.Unlock() }

// At copies n bytes at off.
func (m *Mem) At(off, n int) []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return bytes.Clone(m.data[off : off+n])
}

// Set writes p at off, as the server's own backing store would change.
func (m *Mem) Set(off int, p []byte) { m.mu.Lock(); copy(m.data[off:], p); m.mu.Unlock() }

// Flushes counts FLUSH requests served.
func (m *Mem) Flushes() int { m.mu.RLock(); defer m.mu.RUnlock(); return m.flushes }

// Zeroes lists the write-zeroes requests' flags.
func (m *Mem) Zeroes() []string { m.mu.RLock(); defer m.mu.RUnlock(); return slices.Clone(m.zeroes) }

func (m *Mem) wait(ctx context.Context) error {
	m.mu.RLock()
	g := m.gate
	m.mu.RUnlock()
	if g == nil {
		return nil
	}
	m.gated.Add(1)
	defer m.gated.Add(-1)
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Mem) Size() int64 { return int64(len(m.data)) }

func (m *Mem) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := m.wait(ctx); err != nil {
		return err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.alignedLocked(off, int64(len(p))); err != nil {
		return err
	}
	if off == m.failAt {
		return fmt.Errorf("mem: %w", m.failErr)
	}
	copy(p, m.data[off:])
	return nil
}

func (m *Mem) WriteAt(ctx context.Context, p []byte, off int64) error {
	if err := m.wait(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.alignedLocked(off, int64(len(p))); err != nil {
		return err
	}
	if off == m.failAt {
		return fmt.Errorf("mem: %w", m.failErr)
	}
	copy(m.data[off:], p)
	return nil
}

func (m *Mem) Flush(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.flushErr != 0 {
		return fmt.Errorf("mem: flush: %w", m.flushErr)
	}
	m.flushes++
	return nil
}

func (m *Mem) Trim(_ context.Context, off, n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.alignedLocked(off, n); err != nil {
		return err
	}
	clear(m.data[off : off+n])
	return nil
}

func (m *Mem) Zero(_ context.Context, off, n int64, noHole, fast bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.alignedLocked(off, n); err != nil {
		return err
	}
	m.zeroes = append(m.zeroes, fmt.Sprintf("nohole=%v fast=%v", noHole, fast))
	if fast {
		return fmt.Errorf("mem: %w", syscall.ENOTSUP)
	}
	clear(m.data[off : off+n])
	return nil
}

func (m *Mem) Extents(_ context.Context, off, n int64, emit func(int64, uint32) bool) error {
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

// Exports serves Mems by name; the one named "ro" is read-only.
type Exports map[string]*Mem

func (e Exports) List() []nbdserver.ExportInfo {
	var out []nbdserver.ExportInfo
	for n := range e {
		i, _ := e.Info(n)
		out = append(out, i)
	}
	return out
}

func (e Exports) Info(name string) (nbdserver.ExportInfo, bool) {
	m, ok := e[name]
	if !ok {
		return nbdserver.ExportInfo{}, false
	}
	m.mu.RLock()
	b, noTrim, noZeroes := m.minBlock, m.noTrim, m.noZeroes
	m.mu.RUnlock()
	return nbdserver.ExportInfo{Name: name, Size: m.Size(), ReadOnly: name == "ro", MinBlockSize: b,
		NoTrim: noTrim, NoWriteZeroes: noZeroes}, true
}

func (e Exports) Open(name string) (nbdserver.Export, func(), error) {
	m, ok := e[name]
	if !ok {
		return nil, nil, nbdserver.ErrUnknownExport
	}
	return m, func() {}, nil
}

// Server is gdm's NBD server on a UNIX socket, which a test can stop and
// start again on the same path. Srv is the running server (nil while
// stopped).
type Server struct {
	Path string
	Srv  *nbdserver.Server
	// TLS, when set, is required of every client (nbdserver's TLSRequired).
	TLS  *tls.Config
	t    testing.TB
	exp  Exports
	done chan struct{}
}

// Start serves exp on a socket in a temporary directory until the test
// ends.
func Start(t testing.TB, exp Exports) *Server {
	s := &Server{Path: filepath.Join(t.TempDir(), "nbd.sock"), t: t, exp: exp}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// StartTLS is Start with TLS required, configured by cfg.
func StartTLS(t testing.TB, exp Exports, cfg *tls.Config) *Server {
	s := &Server{Path: filepath.Join(t.TempDir(), "nbd.sock"), TLS: cfg, t: t, exp: exp}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start serves again after Stop.
func (s *Server) Start() {
	l, err := net.Listen("unix", s.Path)
	if err != nil {
		s.t.Fatal(err)
	}
	s.Srv = &nbdserver.Server{Exports: s.exp, TLS: s.TLS, TLSRequired: s.TLS != nil}
	s.done = make(chan struct{})
	srv, done := s.Srv, s.done
	go func() { srv.Serve(l); close(done) }()
}

// Stop closes the listener and every connection, and waits for Serve.
func (s *Server) Stop() {
	if s.Srv == nil {
		return
	}
	s.Srv.Close()
	<-s.done
	s.Srv = nil
}

// URI names export name on this server as a backing device.
func (s *Server) URI(name string) string {
	return "nbd+unix:///" + url.PathEscape(name) + "?socket=" + url.QueryEscape(s.Path)
}
