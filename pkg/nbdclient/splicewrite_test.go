package nbdclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// filledPipe makes a pipe (as gdm's server makes them) holding data, and
// returns its read end.
func filledPipe(t *testing.T, data []byte) int {
	t.Helper()
	r, w := testPipe(t, 1<<20)
	if err := writePipe(w, data); err != nil {
		t.Fatal(err)
	}
	fd := int(r.Fd())
	unix.SetNonblock(fd, true)
	return fd
}

func randomBytes(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rand.Uint32())
	}
	return p
}

// TestSpliceWrite splices writes of several sizes from pipes into gdm's
// server, some with a tail from memory, with ordinary writes in the same
// batches: each lands whole and leaves its pipe empty. A connection without a descriptor refuses.
func TestSpliceWrite(t *testing.T) {
	m := nbdtest.NewMem(8 << 20)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 1})
	for i, n := range []int{4096, 65536, 1 << 20} {
		spliced, plain := randomBytes(n), randomBytes(4096)
		off := int64(i) * (2 << 20)
		tail := n / 4 * i // none, then a quarter, then half from memory
		pipe := filledPipe(t, spliced[:n-tail])
		sch, sdone := nbdtest.NewAsync()
		pch, pdone := nbdtest.NewAsync()
		if !cl.SpliceWriteAsync(context.Background(), pipe, int64(n-tail), spliced[n-tail:], off, sdone) ||
			!cl.WriteAsync(context.Background(), plain, off+int64(n), pdone) {
			t.Fatal("not taken")
		}
		mustOK(t, sch.Wait(t))
		mustOK(t, pch.Wait(t))
		if !bytes.Equal(m.At(int(off), n), spliced) || !bytes.Equal(m.At(int(off)+n, 4096), plain) {
			t.Fatalf("%d bytes: the writes did not land", n)
		}
		if k := queued(pipe); k != 0 {
			t.Fatalf("%d bytes left in the pipe", k)
		}
	}
	deaf, _ := deafClient(t, Options{})
	if deaf.SpliceWriteAsync(context.Background(), filledPipe(t, make([]byte, 4096)), 4096, nil, 0, nbdtest.Never(t)) {
		t.Fatal("a connection without a descriptor took a spliced write")
	}
}

// TestSpliceWriteRetryUnsent drops a connection while a spliced write
// waits behind a write the server does not read: nothing of it had left
// its pipe, so it is sent once more, from the pipe and its tail, on a new
// connection.
func TestSpliceWriteRetryUnsent(t *testing.T) {
	m := nbdtest.NewMem(fakeSize)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	deaf := make(chan net.Conn, 1)
	fake := serveUnix(t, func(c net.Conn) {
		if fakeHandshake(c) == nil {
			deaf <- c
			<-t.Context().Done()
		}
	})
	var dials atomic.Int32
	cl, err := Dial(testCtx(t), Options{MaxConns: 1, BackoffMin: time.Millisecond, Dial: func(ctx context.Context) (net.Conn, error) {
		path := s.Path
		if dials.Add(1) == 1 {
			path = fake
		}
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	first := cl.conns[0]
	first.nc.(*net.UnixConn).SetWriteBuffer(4096) // the kernel's least: the big write cannot all go
	big, spliced := randomBytes(fakeSize/2), randomBytes(65536)
	bch, bdone := nbdtest.NewAsync()
	if !cl.WriteAsync(context.Background(), big, 0, bdone) {
		t.Fatal("write not taken")
	}
	testkit.WaitFor(t, 10*time.Second, "the write stuck in send", func() bool { return writerStuck(first) })
	pipe := filledPipe(t, spliced[:61440])
	sch, sdone := nbdtest.NewAsync()
	if !cl.SpliceWriteAsync(context.Background(), pipe, 61440, spliced[61440:], fakeSize/2, sdone) {
		t.Fatal("spliced write not taken")
	}
	(<-deaf).Close()
	mustOK(t, bch.Wait(t))
	mustOK(t, sch.Wait(t))
	if st := cl.Stats(); st.Retries != 2 || !bytes.Equal(m.At(0, len(big)), big) || !bytes.Equal(m.At(fakeSize/2, 65536), spliced) {
		t.Fatalf("stats %+v, or the writes did not land", st)
	}
}

// TestSpliceWriteRepliedEarly: a server that answers a spliced write
// before reading its payload loses the connection, and the write fails
// (part of it had gone: it cannot be sent again) only once the writer is
// done with the pipe, whose owner may then reuse it.
func TestSpliceWriteRepliedEarly(t *testing.T) {
	path := serveUnix(t, func(c net.Conn) {
		if fakeHandshake(c) != nil {
			return
		}
		var h [requestSize + 4096]byte // and the payload's first page: it has begun to go
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return
		}
		b := binary.BigEndian.AppendUint32(nil, magicSimple)
		b = binary.BigEndian.AppendUint32(b, 0)
		c.Write(binary.BigEndian.AppendUint64(b, binary.BigEndian.Uint64(h[8:])))
		<-t.Context().Done()
	})
	cl, err := Dial(testCtx(t), Options{Network: "unix", Address: path, MaxConns: 1, BackoffMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	c := cl.conns[0]
	c.nc.(*net.UnixConn).SetWriteBuffer(4096) // the kernel's least: the pipe cannot drain
	pipe := filledPipe(t, randomBytes(1<<20))
	writing := make(chan bool, 1)
	ch, done := nbdtest.NewAsync()
	if !cl.SpliceWriteAsync(context.Background(), pipe, 1<<20, nil, 0, func(err error) {
		writing <- writerStuck(c)
		done(err)
	}) {
		t.Fatal("not taken")
	}
	if err := ch.Wait(t); !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrDisconnected) {
		t.Fatalf("write answered before its payload: %v", err)
	}
	if <-writing {
		t.Fatal("done ran while the writer still held the pipe")
	}
	if st := cl.Stats(); st.Retries != 0 {
		t.Fatalf("a write partly sent was sent again: %+v", st)
	}
}
