package nbdclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gdm-project/gdm/internal/testkit"
)

// earlyPayload is larger than inlineMax: the writer sends it from the
// caller's slice, not from a copy.
const earlyPayload = 1 << 20

// answerEarly serves a client whose server answers a write (with
// success) as soon as it has read the request's header, and then runs
// rest, the payload still unread. Over a pipe the writer cannot say
// whether it waits for the server; over a UNIX socket (with the least
// send buffer, so that the payload cannot go into the kernel whole) it
// can, and does.
func answerEarly(t *testing.T, overUnix bool, opts Options, rest func(srv net.Conn, n uint32)) *Client {
	serve := func(srv net.Conn) {
		if fakeHandshake(srv) != nil {
			return
		}
		_, cookie, n, err := readReq(srv)
		if err != nil {
			return
		}
		if _, err := srv.Write(simpleReplyBytes(0, cookie)); err != nil {
			return
		}
		rest(srv, n)
	}
	if !overUnix {
		return pipeClient(t, opts, serve)
	}
	var served atomic.Bool
	opts.Network, opts.Address = "unix", serveUnix(t, func(srv net.Conn) {
		if served.CompareAndSwap(false, true) { // a redial fails, as pipeClient's
			serve(srv)
		}
	})
	opts.MaxConns, opts.BackoffMin = 1, time.Hour
	cl, err := Dial(testCtx(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	cl.conns[0].nc.(*net.UnixConn).SetWriteBuffer(4096)
	return cl
}

// transports runs f over a pipe and over a UNIX socket (see answerEarly).
func transports(t *testing.T, f func(t *testing.T, overUnix bool)) {
	t.Run("pipe", func(t *testing.T) { f(t, false) })
	t.Run("unix", func(t *testing.T) { f(t, true) })
}

// readLate reads the payload of the write answerEarly answered, once the
// client has said it is done with its buffer (returned), or after a
// while. That bound is no stand-in for synchronisation: a correct client
// cannot give its buffer back before the payload is read, so nothing can
// tell the server that it did not; the wait gives a wrong one the time to
// do it.
func readLate(srv net.Conn, n uint32, returned <-chan struct{}, got chan<- []byte) {
	select {
	case <-returned:
	case <-time.After(300 * time.Millisecond):
	}
	b := make([]byte, n)
	io.ReadFull(srv, b)
	got <- b
	io.Copy(io.Discard, srv)
}

// TestWriteAnsweredEarly: WriteAt does not return before its payload is
// sent, even when the server answers first; else what the caller puts in
// its buffer once WriteAt returned would go out as the write's data.
func TestWriteAnsweredEarly(t *testing.T) {
	transports(t, func(t *testing.T, overUnix bool) {
		returned, got := make(chan struct{}), make(chan []byte, 1)
		cl := answerEarly(t, overUnix, Options{}, func(srv net.Conn, n uint32) { readLate(srv, n, returned, got) })
		p := bytes.Repeat([]byte{1}, earlyPayload)
		err := cl.WriteAt(testCtx(t), p, 0, false)
		for i := range p {
			p[i] = 0xEE // the caller reuses its buffer
		}
		close(returned)
		if b := <-got; !bytes.Equal(b, bytes.Repeat([]byte{1}, earlyPayload)) {
			t.Fatalf("the server got bytes the caller wrote after WriteAt returned (%v)", err)
		}
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestWriteAsyncAnsweredEarly: likewise, an asynchronous write's done
// does not run before its payload is sent.
func TestWriteAsyncAnsweredEarly(t *testing.T) {
	transports(t, func(t *testing.T, overUnix bool) {
		returned, got := make(chan struct{}), make(chan []byte, 1)
		cl := answerEarly(t, overUnix, Options{}, func(srv net.Conn, n uint32) { readLate(srv, n, returned, got) })
		p := bytes.Repeat([]byte{1}, earlyPayload)
		done := make(chan error, 1)
		if !cl.WriteAsync(testCtx(t), p, 0, func(err error) {
			for i := range p {
				p[i] = 0xEE // the caller reuses its buffer
			}
			close(returned)
			done <- err
		}) {
			t.Fatal("not taken")
		}
		if b := <-got; !bytes.Equal(b, bytes.Repeat([]byte{1}, earlyPayload)) {
			t.Fatal("the server got bytes the caller wrote after done")
		}
		if err := wait(t, done, "the asynchronous write"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWriteAnsweredEarlyThenStuck: a server that answers a write and
// then reads no more of it does not get its answer taken: the write ends
// with the request timeout, as one stuck in its send.
func TestWriteAnsweredEarlyThenStuck(t *testing.T) {
	transports(t, func(t *testing.T, overUnix bool) {
		cl := answerEarly(t, overUnix, Options{RequestTimeout: 200 * time.Millisecond}, func(srv net.Conn, _ uint32) {
			<-t.Context().Done()
		})
		done := make(chan error, 1)
		go func() { done <- cl.WriteAt(context.Background(), make([]byte, earlyPayload), 0, false) }()
		if err := wait(t, done, "a write answered early, then stuck"); !errors.Is(err, ErrTimeout) {
			t.Fatalf("write answered early, then stuck: %v", err)
		}
	})
}

// TestWriteAnsweredEarlyThenDropped: a server that answers a write and
// hangs up before reading its payload has not written it: the write
// fails (here after a retry whose redial fails).
func TestWriteAnsweredEarlyThenDropped(t *testing.T) {
	transports(t, func(t *testing.T, overUnix bool) {
		cl := answerEarly(t, overUnix, Options{}, func(net.Conn, uint32) {})
		err := cl.WriteAt(testCtx(t), make([]byte, earlyPayload), 0, false)
		if !errors.Is(err, syscall.EIO) || cl.Stats().Retries != 1 {
			t.Fatalf("write answered early, then dropped: %v, stats %+v", err, cl.Stats())
		}
	})
}

// TestReplyBeforeRequest: a reply to a write the writer has not begun to
// send (its cookie guessed) is a protocol error, not an answer.
func TestReplyBeforeRequest(t *testing.T) {
	headerRead, queued := make(chan struct{}), make(chan struct{})
	cl := pipeClient(t, Options{}, func(srv net.Conn) {
		if fakeHandshake(srv) != nil {
			return
		}
		_, cookie, _, err := readReq(srv) // the first write's header: its payload holds up the second
		if err != nil {
			return
		}
		close(headerRead)
		<-queued
		srv.Write(simpleReplyBytes(0, cookie+1))
		io.Copy(io.Discard, srv)
	})
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { first <- cl.WriteAt(testCtx(t), make([]byte, earlyPayload), 0, false) }()
	<-headerRead
	go func() { second <- cl.WriteAt(testCtx(t), make([]byte, 4096), 0, false) }()
	c := cl.conns[0]
	testkit.WaitFor(t, 10*time.Second, "the second write queued", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue) == 1
	})
	close(queued)
	if err := wait(t, second, "the second write"); !errors.Is(err, syscall.EIO) {
		t.Fatalf("a write answered before it was sent: %v", err)
	}
	wait(t, first, "the first write")
}

// TestReplyBeforeRequestNoWait: the reader refuses a reply to a write
// still in the queue before it waits for the writer to be done with it,
// not after: its caller may give up and take it out of the queue
// meanwhile, and then no write of it would ever wake the reader, which
// reads no other reply until another request is written. Here no writer
// runs, as when that caller gave up.
func TestReplyBeforeRequestNoWait(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	f := os.NewFile(uintptr(fds[0]), "socket")
	raw, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cl := &call{req: request{typ: cmdWrite, cookie: 1, length: 4096}, payload: make([]byte, 4096)}
	c := &conn{raw: raw, pending: map[uint64]*call{1: cl}, queue: []*call{cl},
		progress: make(chan struct{}, 1), dead: make(chan struct{})}
	finished := make(chan error, 1)
	go func() { finished <- c.finish(cl, result{}) }()
	select {
	case err := <-finished:
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("a reply to a write not sent yet: %v, want a protocol error", err)
		}
	case <-time.After(10 * time.Second):
		close(c.dead) // awaitWritten returns
		t.Fatal("the reader waits for a write no writer will send")
	}
}
