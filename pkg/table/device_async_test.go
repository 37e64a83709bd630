package table

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// TestAsyncRemoteLinear: a request within a linear target over a remote
// device is started asynchronously (counted), holds the table until it
// completes, and puts it back once; a local target, a request across two
// targets and a write to a read-only device are refused (done never
// called), for the caller's usual path.
func TestAsyncRemoteLinear(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	m.Set(8192, []byte("leg"))
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	f := testkit.Sparse(t, t.TempDir(), "f", 1<<20)
	d := newLiveDevice(t, "0 1024 linear "+s.URI("a")+" 8\n1024 1024 linear "+f+" 0")
	defer d.Close()
	if !d.MayAsync() {
		t.Fatal("MayAsync: a table with a remote leg says no")
	}
	local := newLiveDevice(t, "0 1024 linear "+f+" 0")
	defer local.Close()
	if local.MayAsync() {
		t.Fatal("MayAsync: a table of local files says yes")
	}
	ctx := context.Background()
	gate := make(chan struct{})
	m.SetGate(gate)
	ch, done := nbdtest.NewAsync()
	p := make([]byte, 3)
	if !d.ReadAsync(ctx, p, 4096, done) {
		t.Fatal("read within the remote target refused")
	}
	tb := d.live.Load()
	testkit.WaitFor(t, 10*time.Second, "the read at the leg", func() bool { return s.Srv.InFlight(m) == 1 })
	if h := tb.Holders(); h != 1 {
		t.Fatalf("holders %d while the read is at the leg, want 1", h)
	}
	close(gate)
	if err := ch.Wait(t); err != nil || string(p) != "leg" {
		t.Fatalf("read %q, %v", p, err)
	}
	testkit.WaitFor(t, 10*time.Second, "the holder put back", func() bool { return tb.Holders() == 0 })
	if !d.WriteAsync(ctx, []byte("new"), 0, done) || ch.Wait(t) != nil || string(m.At(4096, 3)) != "new" {
		t.Fatal("write within the remote target")
	}
	if n := d.Stats().Async.Load(); n != 2 {
		t.Fatalf("%d requests started asynchronously, want 2", n)
	}
	if d.ReadAsync(ctx, make([]byte, 512), 1024*512, nbdtest.Never(t)) {
		t.Fatal("a local target took a read asynchronously")
	}
	if d.ReadAsync(ctx, make([]byte, 1024), 1024*512-512, nbdtest.Never(t)) {
		t.Fatal("a read across two targets was taken asynchronously")
	}
	if io := d.Stats().IO.Snapshot(); io.Ops[OpRead] != 1 || io.Ops[OpWrite] != 1 {
		t.Fatalf("counted I/O %+v", io)
	}
	ro := NewDevice("ro", true, discardLog())
	defer ro.Close()
	if err := ro.LoadText("0 1024 linear " + s.URI("a") + " 0"); err != nil {
		t.Fatal(err)
	}
	if err := ro.Resume(ctx, false); err != nil {
		t.Fatal(err)
	}
	if ro.WriteAsync(ctx, make([]byte, 512), 0, nbdtest.Never(t)) {
		t.Fatal("a read-only device took a write")
	}
}

// heldLeg makes a device of one linear target over an in-memory export
// (URI query options opts), whose reads and writes the export holds until
// the returned gate is closed.
func heldLeg(t *testing.T, opts string) (d *Device, uri string, gate chan struct{}) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	d = newLiveDevice(t, "0 2048 linear "+s.URI("a")+opts+" 0")
	t.Cleanup(func() { d.Close() })
	gate = make(chan struct{})
	m.SetGate(gate)
	return d, s.URI("a"), gate
}

// TestAsyncSuspendedFallsBack: a suspended device starts nothing
// asynchronously, so the caller's usual path waits for the resume; a
// suspend waits for an asynchronous request in flight, as for any I/O.
func TestAsyncSuspendedFallsBack(t *testing.T) {
	d, _, gate := heldLeg(t, "")
	ctx := context.Background()
	ch, done := nbdtest.NewAsync()
	if !d.ReadAsync(ctx, make([]byte, 512), 0, done) {
		t.Fatal("read refused")
	}
	suspended := make(chan error, 1)
	go func() { suspended <- d.Suspend(ctx, false) }()
	testkit.WaitFor(t, 10*time.Second, "the suspend gate", func() bool { return d.gate.Load() != nil })
	select {
	case err := <-suspended:
		t.Fatalf("Suspend returned (%v) with an asynchronous read in flight", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(gate)
	if err := ch.Wait(t); err != nil {
		t.Fatal(err)
	}
	if err := <-suspended; err != nil {
		t.Fatal(err)
	}
	if d.ReadAsync(ctx, make([]byte, 512), 0, nbdtest.Never(t)) || d.WriteAsync(ctx, make([]byte, 512), 0, nbdtest.Never(t)) {
		t.Fatal("a suspended device started I/O")
	}
	read := make(chan error, 1)
	go func() { read <- d.ReadAt(ctx, make([]byte, 512), 0) }()
	select {
	case err := <-read:
		t.Fatalf("read completed (%v) on a suspended device", err)
	case <-time.After(20 * time.Millisecond):
	}
	if err := d.Resume(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil {
		t.Fatalf("read after resume: %v", err)
	}
	if !d.ReadAsync(ctx, make([]byte, 512), 0, done) || ch.Wait(t) != nil {
		t.Fatal("no asynchronous read after the resume")
	}
}

// TestAsyncReloadDrains: a live reload with asynchronous requests in
// flight on the old table goes live at once, and destroys the old table
// (closing its remote device) only once they complete.
func TestAsyncReloadDrains(t *testing.T) {
	d, uri, gate := heldLeg(t, "")
	ctx := context.Background()
	old := d.live.Load()
	var chans []nbdtest.Async
	for i := range 4 {
		ch, done := nbdtest.NewAsync()
		chans = append(chans, ch)
		if !d.WriteAsync(ctx, make([]byte, 512), int64(i)*512, done) {
			t.Fatal("write refused")
		}
	}
	if err := d.LoadText("0 2048 linear " + uri + " 0"); err != nil {
		t.Fatal(err)
	}
	resumed := make(chan error, 1)
	go func() { resumed <- d.Resume(ctx, true) }()
	testkit.WaitFor(t, 10*time.Second, "the swap", func() bool { return d.live.Load() != old })
	select {
	case err := <-resumed:
		t.Fatalf("Resume returned (%v) before the old table's requests completed", err)
	case <-time.After(20 * time.Millisecond):
	}
	if old.Destroyed() || old.Devs().Closes() != 0 || old.Holders() != 4 {
		t.Fatalf("old table: destroyed %v, closes %d, holders %d", old.Destroyed(), old.Devs().Closes(), old.Holders())
	}
	close(gate)
	for _, ch := range chans {
		if err := ch.Wait(t); err != nil {
			t.Fatal(err)
		}
	}
	if err := nbdtest.Async(resumed).Wait(t); err != nil {
		t.Fatal(err)
	}
	if !old.Destroyed() || old.Devs().Closes() != 1 {
		t.Fatal("old table not destroyed after its requests completed")
	}
}

// TestAsyncRemoteTimeout: a leg that stops answering fails an
// asynchronous read with EIO within its timeout, and the holder is put.
func TestAsyncRemoteTimeout(t *testing.T) {
	d, _, gate := heldLeg(t, "&timeout=200ms")
	defer close(gate)
	ch, done := nbdtest.NewAsync()
	if !d.ReadAsync(context.Background(), make([]byte, 512), 0, done) {
		t.Fatal("read refused")
	}
	if err := ch.Wait(t); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read from a silent leg: %v", err)
	}
	// complete puts the holder after done has run: wait for it.
	tb := d.live.Load()
	testkit.WaitFor(t, 10*time.Second, "the holder put back", func() bool { return tb.Holders() == 0 })
	if d.Stats().IO.Snapshot().Errors[OpRead] != 1 {
		t.Fatal("the failed read was not counted")
	}
}

// TestAsyncResultsInTheTargetsWords: the remote's result reaches done in
// the target's words (targets.AsyncTarget.AsyncErr, which the table
// applies, since no layer wraps done): a failed read or write names the
// leg and the offset on it and is counted once; a spliced read moves its
// range into the pipe and counts as a read.
func TestAsyncResultsInTheTargetsWords(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	d := newLiveDevice(t, "0 1024 linear "+s.URI("a")+" 8")
	defer d.Close()
	ctx := context.Background()
	ch, done := nbdtest.NewAsync()
	for _, c := range []struct {
		op    string
		errno syscall.Errno
		start func() bool
	}{
		{"read", syscall.EIO, func() bool { return d.ReadAsync(ctx, make([]byte, 512), 512, done) }},
		{"write", syscall.ENOSPC, func() bool { return d.WriteAsync(ctx, make([]byte, 512), 512, done) }},
	} {
		m.FailAt(4096+512, c.errno)
		if !c.start() {
			t.Fatalf("%s refused", c.op)
		}
		err := ch.Wait(t)
		want := fmt.Sprintf("targets: %s %s at %d", c.op, s.URI("a"), 4096+512)
		if !errors.Is(err, c.errno) || err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: done got %v, want %v saying %q", c.op, err, c.errno, want)
		}
	}
	m.FailAt(-1, 0)
	if st := d.Stats().IO.Snapshot(); st.Errors[OpRead] != 1 || st.Errors[OpWrite] != 1 {
		t.Fatalf("errors counted %+v, want one read and one write", st.Errors)
	}

	const n = 64 << 10
	data := bytes.Repeat([]byte("spliced!"), n/8)
	m.Set(4096+8192, data)
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if !d.SpliceReadAsync(ctx, fds[1], 8192, n, done) {
		t.Fatal("spliced read refused")
	}
	if err := ch.Wait(t); err != nil {
		t.Fatalf("spliced read: %v", err)
	}
	got := make([]byte, n)
	for k := 0; k < n; {
		m, err := unix.Read(fds[0], got[k:])
		if err != nil || m == 0 {
			t.Fatalf("the pipe holds %d bytes (%v), want %d", k, err, n)
		}
		k += m
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the pipe holds other bytes than the leg's")
	}
	if st := d.Stats().IO.Snapshot(); st.Ops[OpRead] != 2 || st.Errors[OpRead] != 1 {
		t.Fatalf("counted %+v, want the spliced read as a second read, without error", st)
	}
}
