package nbdclient

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

func TestHandshakeInfo(t *testing.T) {
	s := nbdtest.Start(t, nbdtest.Exports{"a": nbdtest.NewMem(1 << 20), "ro": nbdtest.NewMem(4096)})
	cl := dial(t, s, "a", Options{})
	i := cl.Info()
	want := FlagHasFlags | FlagSendFlush | FlagSendFUA | FlagSendTrim | FlagWriteZeroes | FlagSendDF | FlagCanMultiConn | FlagSendFastZero
	if i.Size != 1<<20 || i.Flags&want != want || !i.Structured || !i.HasAllocation || i.MaxBlock != 32<<20 || i.MinBlock != 1 {
		t.Fatalf("info %+v", i)
	}
	ro := dial(t, s, "ro", Options{})
	if ro.Info().Flags&FlagReadOnly == 0 {
		t.Fatalf("ro flags %#x", ro.Info().Flags)
	}
	err := ro.WriteAt(testCtx(t), make([]byte, 512), 0, false)
	if !errors.Is(err, syscall.EPERM) {
		t.Fatalf("write to read-only export: %v", err)
	}
	_, err = Dial(testCtx(t), Options{Network: "unix", Address: s.Path, Export: "nosuch"})
	if err == nil {
		t.Fatal("dial of an unknown export succeeded")
	}
}

func TestReadWrite(t *testing.T) {
	m := nbdtest.NewMem(40 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{})
	ctx := testCtx(t)
	big := make([]byte, 33<<20+4096) // more than one request
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := cl.WriteAt(ctx, big, 512, false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.At(512, len(big)), big) {
		t.Fatal("server holds other data than written")
	}
	got := make([]byte, len(big))
	if err := cl.ReadAt(ctx, got, 512); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("read back other data")
	}
	if err := cl.ReadAt(ctx, make([]byte, 2), m.Size()-1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("read past the end: %v", err)
	}
}

func TestFlushFUATrimZero(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{})
	ctx := testCtx(t)
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cl.WriteAt(ctx, bytes.Repeat([]byte{1}, 8192), 0, true); err != nil {
		t.Fatal(err)
	}
	flushes := m.Flushes() // the server does FUA as write+flush
	if flushes != 2 {
		t.Fatalf("flushes %d, want 2 (FLUSH, then the FUA write's)", flushes)
	}
	if err := cl.Trim(ctx, 0, 4096); err != nil {
		t.Fatal(err)
	}
	if err := cl.Zero(ctx, 4096, 512, true, false); err != nil {
		t.Fatal(err)
	}
	if err := cl.Zero(ctx, 0, 512, false, true); !errors.Is(err, syscall.ENOTSUP) {
		t.Fatalf("fast zero: %v", err)
	}
	got := make([]byte, 8192)
	cl.ReadAt(ctx, got, 0)
	want := append(make([]byte, 4096+512), bytes.Repeat([]byte{1}, 4096-512)...)
	if !bytes.Equal(got, want) || !slices.Equal(m.Zeroes(), []string{"nohole=true fast=false", "nohole=false fast=true"}) {
		t.Fatalf("after trim and zero: zeroes %v, data differs %v", m.Zeroes(), !bytes.Equal(got, want))
	}
}

func TestExtents(t *testing.T) {
	m := nbdtest.NewMem(64 << 10)
	m.SetHole(1)
	m.SetHole(2)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{})
	var got []Extent
	err := cl.Extents(testCtx(t), 2048, 4*4096, func(e Extent) bool { got = append(got, e); return true })
	if err != nil {
		t.Fatal(err)
	}
	want := []Extent{{2048, 0}, {8192, 3}, {6144, 0}} // the server merges runs
	if !slices.Equal(got, want) {
		t.Fatalf("extents %v, want %v", got, want)
	}
}

func TestRemoteErrors(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	m.FailAt(8192, syscall.EIO)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{})
	ctx := testCtx(t)
	err := cl.ReadAt(ctx, make([]byte, 512), 8192)
	var re *RemoteError
	if !errors.As(err, &re) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("read error %v", err)
	}
	m.FailAt(8192, syscall.ENOSPC)
	if err := cl.WriteAt(ctx, make([]byte, 512), 8192, false); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write error %v", err)
	}
	// The connection lives on after error replies.
	if err := cl.ReadAt(ctx, make([]byte, 512), 0); err != nil || cl.Stats().Redials != 0 {
		t.Fatalf("after errors: %v, %+v", err, cl.Stats())
	}
}

// TestManyInFlight holds the server's export until every request of one
// connection has arrived: they were all in flight at once.
func TestManyInFlight(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 1})
	gate := make(chan struct{})
	m.SetGate(gate)
	const n = 16
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			p := bytes.Repeat([]byte{byte(i)}, 4096)
			if errs[i] = cl.WriteAt(ctx, p, int64(i)*4096, false); errs[i] == nil {
				errs[i] = cl.ReadAt(ctx, p, int64(i)*4096)
			}
		})
	}
	testkit.WaitFor(t, 10*time.Second, "16 requests in flight", func() bool {
		return s.Srv.InFlight(m) == n && s.Srv.Connections(m) == 1
	})
	close(gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil || m.At(i*4096, 1)[0] != byte(i) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}

func TestPool(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	dial(t, s, "a", Options{MaxConns: 3})
	testkit.WaitFor(t, 10*time.Second, "3 connections", func() bool { return s.Srv.Connections(m) == 3 })
}

// TestCancel abandons a read the server holds: the caller gets its context
// error at once, the connection survives, and the late reply is dropped.
func TestCancel(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 1})
	gate := make(chan struct{})
	m.SetGate(gate)
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error)
	buf := make([]byte, 4096)
	go func() { done <- cl.ReadAt(ctx, buf, 0) }()
	testkit.WaitFor(t, 10*time.Second, "read in flight", func() bool { return s.Srv.InFlight(m) == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
	m.Set(0, []byte{9})
	close(gate)
	p := make([]byte, 1)
	if err := cl.ReadAt(testCtx(t), p, 0); err != nil || p[0] != 9 || buf[0] != 0 {
		t.Fatalf("after cancel: %v %d, abandoned buffer %d", err, p[0], buf[0])
	}
}

// TestTimeout: a server that stops answering fails the request with
// ErrTimeout (an EIO) and loses the connection.
func TestTimeout(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 1, RequestTimeout: 200 * time.Millisecond})
	gate := make(chan struct{})
	defer close(gate)
	m.SetGate(gate)
	err := cl.ReadAt(context.Background(), make([]byte, 512), 0)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("read from a silent server: %v", err)
	}
	if cl.Connected() {
		t.Fatal("the connection outlived a timeout")
	}
}
