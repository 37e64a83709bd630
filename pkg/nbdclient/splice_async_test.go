package nbdclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// TestSpliceReadAsync splices reads of several sizes asynchronously, with
// ordinary reads between them on the one connection: each pipe holds
// exactly its range, and once all are done no spliced read counts as in
// flight (the reader reads ahead again). It also sees what the fast path
// refuses.
func TestSpliceReadAsync(t *testing.T) {
	cl, data := serveRandom(t, 8<<20)
	ctx := testCtx(t)
	for _, n := range []int64{4096, 65536, 256 << 10} {
		type spliced struct {
			r   *os.File
			off int64
			ch  nbdtest.Async
		}
		var all []spliced
		for i := range int64(4) {
			off := (i*n*3 + 512) % (7 << 20)
			r, w := testPipe(t, 1<<20)
			ch, done := nbdtest.NewAsync()
			if !cl.SpliceReadAsync(ctx, w, off, n, done) {
				t.Fatalf("size %d: not taken", n)
			}
			all = append(all, spliced{r, off, ch})
			p := make([]byte, 4096)
			if err := cl.ReadAt(ctx, p, i*4096); err != nil || !bytes.Equal(p, data[i*4096:i*4096+4096]) {
				t.Fatalf("size %d: ordinary read between: %v", n, err)
			}
		}
		for _, sp := range all {
			mustOK(t, sp.ch.Wait(t))
			got := make([]byte, n)
			if _, err := io.ReadFull(sp.r, got); err != nil || !bytes.Equal(got, data[sp.off:sp.off+n]) {
				t.Fatalf("size %d at %d: spliced bytes differ (%v)", n, sp.off, err)
			}
		}
	}
	if k := cl.conns[0].splicing.Load(); k != 0 {
		t.Fatalf("%d spliced reads still counted in flight", k)
	}
	_, w := testPipe(t, 1<<20)
	never := nbdtest.Never(t)
	if cl.SpliceReadAsync(ctx, -1, 0, 4096, never) {
		t.Fatal("took a read without a pipe")
	}
	if cl.SpliceReadAsync(ctx, w, 0, MaxRequest+512, never) {
		t.Fatal("took a read longer than one request")
	}
	deaf, _ := deafClient(t, Options{RequestTimeout: -1})
	if deaf.SpliceReadAsync(ctx, w, 0, 4096, never) {
		t.Fatal("a connection without a descriptor took a spliced read")
	}
}

// TestSpliceReadAsyncDropped drops the connection under an asynchronous
// spliced read the server holds: it is not sent again (its pipe may hold
// part of the range), done gets ErrNoSplice, so that the caller reads the
// range the ordinary way, and it no longer counts in flight.
func TestSpliceReadAsyncDropped(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 1, BackoffMin: time.Millisecond})
	gate := make(chan struct{})
	defer close(gate)
	m.SetGate(gate)
	_, w := testPipe(t, 1<<20)
	ch, done := nbdtest.NewAsync()
	if !cl.SpliceReadAsync(context.Background(), w, 0, 65536, done) {
		t.Fatal("not taken")
	}
	c := cl.conns[0]
	testkit.WaitFor(t, 10*time.Second, "the read in flight", func() bool { return s.Srv.InFlight(m) == 1 })
	if n := s.Srv.Disconnect(m); n != 1 {
		t.Fatalf("disconnected %d connections", n)
	}
	if err := ch.Wait(t); !errors.Is(err, ErrNoSplice) || !errors.Is(err, ErrDisconnected) {
		t.Fatalf("spliced read on a dropped connection: %v", err)
	}
	if st := cl.Stats(); st.Retries != 0 || c.splicing.Load() != 0 {
		t.Fatalf("stats %+v, %d spliced reads counted in flight", st, c.splicing.Load())
	}
}

// TestSplicedReadsInTurn: spliced reads sent one at a time, each after
// the last completed, so that none is in flight while the reader waits
// for the next reply: having just spliced, it reads that reply's header
// without reading ahead, and no payload after the first is copied into
// its pipe. A reply of another kind ends that.
func TestSplicedReadsInTurn(t *testing.T) {
	cl, data := serveRandom(t, 4<<20)
	c := cl.conns[0]
	r, w := testPipe(t, 1<<20)
	got := make([]byte, 1<<20)
	var first uint64
	for i := range int64(8) {
		ch, done := nbdtest.NewAsync()
		off := i % 3 << 20
		if !cl.SpliceReadAsync(context.Background(), w, off, 1<<20, done) {
			t.Fatal("not taken")
		}
		mustOK(t, ch.Wait(t))
		if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, data[off:off+1<<20]) {
			t.Fatalf("read %d: other bytes (%v)", i, err)
		}
		if i == 0 {
			first = c.copiedAhead.Load() // the reader may have been reading ahead when it began
		}
	}
	if n := c.copiedAhead.Load() - first; n != 0 {
		t.Fatalf("%d of 7 spliced reads were read ahead and copied", n)
	}
	// Any other reply ends it: the replies of writes are read ahead, in
	// bulk, again.
	mustOK(t, cl.WriteAt(context.Background(), data[:4096], 0, false))
	if c.splicedLast {
		t.Fatal("after a write's reply the reader still reads reply headers one by one")
	}
}

// TestSpliceAfterReadAhead: the reader read a reply's header and the
// start of its payload ahead (it began to read while no spliced read was
// in flight), then splices the rest into a pipe that holds exactly one
// full-size read. The sender splices from a file, as gdm's server does,
// so its pages begin on the payload's page boundaries: the copied part
// must end on one (copyToPage) for the spliced pages to fit the pipe's
// slots.
func TestSpliceAfterReadAhead(t *testing.T) {
	const n, head = 1 << 20, 28
	data := randomBytes(n)
	file := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sender := os.NewFile(uintptr(fds[1]), "sender")
	defer sender.Close()
	recv := os.NewFile(uintptr(fds[0]), "receiver")
	nc, err := net.FileConn(recv)
	recv.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sent := make(chan error, 1)
	go func() { sent <- spliceFile(sender, file, head) }()

	raw, _ := nc.(*net.UnixConn).SyscallConn()
	const bufSize = 64<<10 + 1000
	c := &conn{nc: nc, raw: raw, r: bufio.NewReaderSize(nc, bufSize)}
	if _, err := c.r.Peek(bufSize); err != nil { // the read ahead
		t.Fatal(err)
	}
	c.r.Discard(head)
	r, w := testPipe(t, 1<<20)
	cl := &call{pipe: w, req: request{typ: cmdRead, length: n}}
	if err := c.spliceFill(cl, 0, n); err != nil || cl.spliceErr != nil {
		t.Fatalf("splice after %d bytes read ahead: %v, %v", bufSize-head, err, cl.spliceErr)
	}
	mustOK(t, <-sent)
	got := make([]byte, n)
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("spliced bytes differ (%v)", err)
	}
}

// spliceFile writes a head of zeros to sock, then splices file into it
// through a pipe, as gdm's server sends a read reply.
func spliceFile(sock *os.File, file string, head int) error {
	if _, err := sock.Write(make([]byte, head)); err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	for {
		m, err := unix.Splice(int(f.Fd()), nil, p[1], nil, 64<<10, 0)
		if err != nil || m == 0 {
			return err
		}
		for m > 0 {
			k, err := unix.Splice(p[0], nil, int(sock.Fd()), nil, int(m), 0)
			if err != nil {
				return err
			}
			m -= k
		}
	}
}
