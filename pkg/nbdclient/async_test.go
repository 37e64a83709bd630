package nbdclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// TestAsyncReadWrite writes and reads back asynchronously, and sees what
// the fast path refuses: a range longer than one request, a cancelled
// context, a closed client.
func TestAsyncReadWrite(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{})
	data := bytes.Repeat([]byte{3}, 8192)
	ch, done := nbdtest.NewAsync()
	if !cl.WriteAsync(context.Background(), data, 4096, done) {
		t.Fatal("write not taken")
	}
	mustOK(t, ch.Wait(t))
	if !bytes.Equal(m.At(4096, 8192), data) {
		t.Fatal("the write did not land")
	}
	p := make([]byte, 8192)
	if !cl.ReadAsync(context.Background(), p, 4096, done) {
		t.Fatal("read not taken")
	}
	mustOK(t, ch.Wait(t))
	if !bytes.Equal(p, data) {
		t.Fatal("read back other data")
	}
	never := nbdtest.Never(t)
	if cl.ReadAsync(context.Background(), make([]byte, MaxRequest+512), 0, never) {
		t.Fatal("took a read longer than one request")
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if cl.ReadAsync(cancelled, p, 0, never) {
		t.Fatal("took a read with a cancelled context")
	}
	cl.Close()
	if cl.ReadAsync(context.Background(), p, 0, never) {
		t.Fatal("a closed client took a read")
	}
}

// TestAsyncTimeout: a server that stops answering fails an asynchronous
// read with ErrTimeout, as a synchronous one.
func TestAsyncTimeout(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 1, RequestTimeout: 200 * time.Millisecond})
	gate := make(chan struct{})
	defer close(gate)
	m.SetGate(gate)
	ch, done := nbdtest.NewAsync()
	if !cl.ReadAsync(context.Background(), make([]byte, 512), 0, done) {
		t.Fatal("read not taken")
	}
	if err := ch.Wait(t); !errors.Is(err, ErrTimeout) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("read from a silent server: %v", err)
	}
}

// TestAsyncRetryAfterDrop drops the connection under an asynchronous read
// and write the server holds: each is sent once more on a new connection
// and completes there, as synchronous ones do.
func TestAsyncRetryAfterDrop(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 1, BackoffMin: time.Millisecond})
	m.Set(0, []byte{8})
	gate := make(chan struct{})
	m.SetGate(gate)
	rch, rdone := nbdtest.NewAsync()
	wch, wdone := nbdtest.NewAsync()
	p := make([]byte, 4096)
	if !cl.ReadAsync(context.Background(), p, 0, rdone) || !cl.WriteAsync(context.Background(), bytes.Repeat([]byte{5}, 4096), 8192, wdone) {
		t.Fatal("not taken")
	}
	testkit.WaitFor(t, 10*time.Second, "2 requests in flight", func() bool { return s.Srv.InFlight(m) == 2 })
	if n := s.Srv.Disconnect(m); n != 1 {
		t.Fatalf("disconnected %d connections", n)
	}
	testkit.WaitFor(t, 10*time.Second, "both sent again", func() bool {
		return cl.Stats().Retries == 2 && s.Srv.InFlight(m) == 2
	})
	close(gate)
	mustOK(t, rch.Wait(t))
	mustOK(t, wch.Wait(t))
	if st := cl.Stats(); st.Redials != 1 || m.At(8192, 1)[0] != 5 || p[0] != 8 {
		t.Fatalf("stats %+v, data %d, read %d", st, m.At(8192, 1)[0], p[0])
	}
}

// TestAsyncServerShutdown: an asynchronous read answered ESHUTDOWN hangs
// up and is sent once more, as a synchronous one.
func TestAsyncServerShutdown(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 1, BackoffMin: time.Millisecond})
	m.FailAt(0, syscall.ESHUTDOWN)
	ch, done := nbdtest.NewAsync()
	if !cl.ReadAsync(context.Background(), make([]byte, 512), 0, done) {
		t.Fatal("not taken")
	}
	if err := ch.Wait(t); !errors.Is(err, syscall.ESHUTDOWN) || cl.Stats().Retries != 1 || cl.Stats().Redials != 1 {
		t.Fatalf("read answered ESHUTDOWN twice: %v, stats %+v", err, cl.Stats())
	}
}

// TestAsyncCloseAndDown: Close fails an asynchronous call the server holds
// with ErrClosed; with the server gone, the fast path refuses.
func TestAsyncCloseAndDown(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 1, RequestTimeout: -1, BackoffMin: time.Hour})
	gate := make(chan struct{})
	defer close(gate)
	m.SetGate(gate)
	ch, done := nbdtest.NewAsync()
	if !cl.WriteAsync(context.Background(), make([]byte, 4096), 0, done) {
		t.Fatal("not taken")
	}
	testkit.WaitFor(t, 10*time.Second, "write in flight", func() bool { return s.Srv.InFlight(m) == 1 })
	cl.Close()
	if err := ch.Wait(t); !errors.Is(err, ErrClosed) {
		t.Fatalf("write held at close: %v", err)
	}

	other := dial(t, s, "a", Options{MaxConns: 1, BackoffMin: time.Hour})
	s.Stop()
	testkit.WaitFor(t, 10*time.Second, "connection gone", func() bool { return !other.Connected() })
	if other.ReadAsync(context.Background(), make([]byte, 512), 0, nbdtest.Never(t)) {
		t.Fatal("took a read with no connection")
	}
}

// TestAsyncTLS: asynchronous calls over TLS to gdm's server, and a read
// held when the connection drops, retried through a new TLS handshake.
func TestAsyncTLS(t *testing.T) {
	certs := testkit.NewTLSCerts(t)
	cfg := &tls.Config{Certificates: []tls.Certificate{certs.Server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: certs.Pool}
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.StartTLS(t, nbdtest.Exports{"a": m}, cfg)
	cl := dial(t, s, "a", Options{MaxConns: 1, BackoffMin: time.Millisecond, TLS: tlsConfig(t, certs.Dir, true)})
	ch, done := nbdtest.NewAsync()
	data := bytes.Repeat([]byte{6}, 65536)
	if !cl.WriteAsync(context.Background(), data, 0, done) {
		t.Fatal("write not taken")
	}
	mustOK(t, ch.Wait(t))
	gate := make(chan struct{})
	m.SetGate(gate)
	p := make([]byte, 65536)
	if !cl.ReadAsync(context.Background(), p, 0, done) {
		t.Fatal("read not taken")
	}
	testkit.WaitFor(t, 10*time.Second, "the read in flight", func() bool { return s.Srv.InFlight(m) == 1 })
	s.Srv.Disconnect(m)
	testkit.WaitFor(t, 10*time.Second, "the read sent again", func() bool { return cl.Stats().Retries == 1 && s.Srv.InFlight(m) == 1 })
	close(gate)
	if err := ch.Wait(t); err != nil || !bytes.Equal(p, data) {
		t.Fatalf("read over TLS after a drop: %v, or other data", err)
	}
}

// TestAsyncLargeWriteOnCaller: a large asynchronous write, with room for
// it in the socket's send buffer, is written by its caller before
// WriteAsync returns (no goroutine woken for it: writeOnCaller); with the
// buffer too small for it, roomFor says no and a goroutine writes it
// (TestSpliceWriteRetryUnsent shows the caller then returns while the
// server reads nothing).
func TestAsyncLargeWriteOnCaller(t *testing.T) {
	m := nbdtest.NewMem(4 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 1})
	c := cl.conns[0]
	data := randomBytes(1 << 20)
	ch, done := nbdtest.NewAsync()
	if !cl.WriteAsync(context.Background(), data, 4096, done) {
		t.Fatal("write not taken")
	}
	if c.written.Load() == 0 {
		t.Fatal("WriteAsync returned before its 1 MiB write was written, with room for it in the socket")
	}
	mustOK(t, ch.Wait(t))
	if !bytes.Equal(m.At(4096, len(data)), data) {
		t.Fatal("the write did not land")
	}
	big := requestSize + 1<<20
	if !c.roomFor(big) {
		t.Fatal("roomFor: no room for 1 MiB in an idle socket's 4 MiB buffer")
	}
	c.nc.(*net.UnixConn).SetWriteBuffer(4096)
	if c.roomFor(big) {
		t.Fatal("roomFor: room for 1 MiB in a 4 KiB buffer")
	}
}
