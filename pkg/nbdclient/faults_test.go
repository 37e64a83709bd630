package nbdclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// TestRetryAfterDrop drops the connection under a read and a write the
// server holds: each is sent again, once, on a new connection, and
// completes there.
func TestRetryAfterDrop(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 1, BackoffMin: time.Millisecond})
	gate := make(chan struct{})
	m.SetGate(gate)
	ctx := testCtx(t)
	done := make(chan error, 2)
	p := make([]byte, 4096)
	go func() { done <- cl.ReadAt(ctx, p, 0) }()
	go func() { done <- cl.WriteAt(ctx, bytes.Repeat([]byte{5}, 4096), 8192, false) }()
	testkit.WaitFor(t, 10*time.Second, "2 requests in flight", func() bool { return s.Srv.InFlight(m) == 2 })
	if n := s.Srv.Disconnect(m); n != 1 {
		t.Fatalf("disconnected %d connections", n)
	}
	testkit.WaitFor(t, 10*time.Second, "both sent again", func() bool {
		return cl.Stats().Retries == 2 && s.Srv.InFlight(m) == 2
	})
	close(gate)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if st := cl.Stats(); st.Redials != 1 || m.At(8192, 1)[0] != 5 {
		t.Fatalf("stats %+v, data %d", st, m.At(8192, 1)[0])
	}
}

// TestServerDownAndBack stops the server: I/O fails with EIO (the retry
// finds no server), without waiting for anything while the backoff runs,
// and works again by itself once the server is back.
func TestServerDownAndBack(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	ctx := testCtx(t)
	mustOK(t, cl.WriteAt(ctx, []byte{1}, 0, false))
	s.Stop()
	// The first read may meet pool connections that have not yet seen
	// their end; every read fails with EIO, and once none is left, with
	// ErrDown.
	if err := cl.ReadAt(ctx, make([]byte, 1), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read with the server down: %v", err)
	}
	testkit.WaitFor(t, 10*time.Second, "all connections down", func() bool { return !cl.Connected() })
	if err := cl.ReadAt(ctx, make([]byte, 1), 0); !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrDown) {
		t.Fatalf("read with the server down: %v", err)
	}
	s.Start()
	p := make([]byte, 1)
	testkit.WaitFor(t, 10*time.Second, "the client back", func() bool { return cl.ReadAt(ctx, p, 0) == nil })
	if st := cl.Stats(); p[0] != 1 || st.FailedDials == 0 || st.Redials == 0 {
		t.Fatalf("data %d, stats %+v", p[0], st)
	}
}

// TestCloseStuck closes a client whose server stopped answering (no
// request timeout) and one whose server reads nothing at all: Close
// returns, and the stuck calls fail with ErrClosed.
func TestCloseStuck(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 1, RequestTimeout: -1})
	gate := make(chan struct{})
	defer close(gate)
	m.SetGate(gate)
	done := make(chan error, 1)
	go func() { done <- cl.ReadAt(context.Background(), make([]byte, 512), 0) }()
	testkit.WaitFor(t, 10*time.Second, "read in flight", func() bool { return s.Srv.InFlight(m) == 1 })
	cl.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("read stuck at close: %v", err)
	}

	cli, srv := net.Pipe()
	defer srv.Close()
	go fakeHandshake(srv) // then reads nothing
	deaf, err := Dial(testCtx(t), Options{Dial: func(context.Context) (net.Conn, error) { return cli, nil }, RequestTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- deaf.WriteAt(context.Background(), make([]byte, 4096), 0, false) }()
	testkit.WaitFor(t, 10*time.Second, "write stuck in send", func() bool {
		if deaf.conns[0].wmu.TryLock() {
			deaf.conns[0].wmu.Unlock()
			return false
		}
		return true
	})
	deaf.Close()
	if err := <-done; !errors.Is(err, syscall.EIO) {
		t.Fatalf("write stuck at close: %v", err)
	}
}

// TestDialSilent dials a server that accepts and says nothing: the dial
// fails within its timeout.
func TestDialSilent(t *testing.T) {
	path := serveUnix(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	_, err := Dial(context.Background(), Options{Network: "unix", Address: path, DialTimeout: 100 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial of a silent server: %v", err)
	}
}

// TestServerShutdown: a server answering ESHUTDOWN (as nbdkit does on
// SIGTERM, waiting for its clients to leave) is hung up on and redialled,
// and the request sent once more.
func TestServerShutdown(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 3, BackoffMin: time.Millisecond})
	testkit.WaitFor(t, 10*time.Second, "3 connections", func() bool { return s.Srv.Connections(m) == 3 })
	m.FailAt(0, syscall.ESHUTDOWN)
	err := cl.ReadAt(testCtx(t), make([]byte, 512), 0)
	if !errors.Is(err, syscall.ESHUTDOWN) || cl.Stats().Retries != 1 || cl.Stats().Redials != 1 {
		t.Fatalf("read answered ESHUTDOWN twice: %v, stats %+v", err, cl.Stats())
	}
	// The whole pool hung up, twice (the retry's connection too).
	testkit.WaitFor(t, 10*time.Second, "every connection gone", func() bool { return s.Srv.Connections(m) == 0 })
	m.FailAt(-1, 0)
	mustOK(t, cl.ReadAt(testCtx(t), make([]byte, 512), 0))
}

// TestPoolRefills drops every connection of a pool: the next requests
// redial one, and the pool grows back to its size in the background.
func TestPoolRefills(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 3, BackoffMin: time.Millisecond})
	testkit.WaitFor(t, 10*time.Second, "3 connections", func() bool { return s.Srv.Connections(m) == 3 })
	s.Srv.Disconnect(m)
	p := make([]byte, 512)
	testkit.WaitFor(t, 10*time.Second, "the pool back to 3", func() bool {
		cl.ReadAt(testCtx(t), p, 0) // errors while the pool is down are fine
		return s.Srv.Connections(m) == 3
	})
}

// TestCancelMidPayload gives up on a read whose data stopped half-way: the
// call returns (the connection is dropped to free the buffer), instead of
// waiting for bytes that never come.
func TestCancelMidPayload(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	sent := make(chan struct{})
	go func() {
		if fakeHandshake(srv) != nil {
			return
		}
		var h [requestSize]byte
		if _, err := io.ReadFull(srv, h[:]); err != nil {
			return
		}
		head := binary.BigEndian.AppendUint64(nil, 0)
		srv.Write(chunkBytes(chunkFlagDone, chunkOffsetData, binary.BigEndian.Uint64(h[8:]), append(head, make([]byte, 4096)...))[:chunkHeaderSize+8+100])
		close(sent) // the client's reader took the first 100 bytes
		io.Copy(io.Discard, srv)
	}()
	cl, err := Dial(testCtx(t), Options{Dial: func(context.Context) (net.Conn, error) { return cli, nil }, RequestTimeout: -1, BackoffMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cl.ReadAt(ctx, make([]byte, 4096), 0) }()
	<-sent
	testkit.WaitFor(t, 10*time.Second, "the reader filling the buffer", func() bool { return filling(cl.conns[0]) })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("read: %v", err)
		}
	case <-time.After(10 * time.Second): // a bound on a hang, not a speed test
		t.Fatal("a cancelled read waited for data that never comes")
	}
}

// filling says whether c's reader is filling a call's buffer (holds its
// bufMu).
func filling(c *conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.pending {
		if cl.bufMu.TryLock() {
			cl.bufMu.Unlock()
			return false
		}
		return true
	}
	return false
}
