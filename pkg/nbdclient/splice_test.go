package nbdclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// testPipe makes a non-blocking pipe of size bytes (as gdm's server
// makes them) and returns its ends.
func testPipe(t *testing.T, size int) (r *os.File, w int) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, size); err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fds[0], false)
	r = os.NewFile(uintptr(fds[0]), "pipe")
	t.Cleanup(func() { r.Close(); unix.Close(fds[1]) })
	return r, fds[1]
}

// serveRandom serves size bytes of random data from gdm's server, and
// dials it with one connection.
func serveRandom(t *testing.T, size int) (*Client, []byte) {
	m := nbdtest.NewMem(size)
	data := randomBytes(size)
	m.Set(0, data)
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	return dial(t, s, "a", Options{MaxConns: 1}), data
}

// TestSpliceRead splices reads of several sizes from gdm's server into a
// pipe, several at once on one connection with ordinary reads between
// them: each pipe holds exactly its range.
func TestSpliceRead(t *testing.T) {
	cl, data := serveRandom(t, 8<<20)
	ctx := testCtx(t)
	for _, n := range []int64{4096, 65536, 1 << 20} {
		errs := make(chan error, 8)
		for i := range int64(4) {
			go func() {
				off := (i*n*3 + 512) % (7 << 20)
				r, w := testPipe(t, 1<<20)
				if err := cl.SpliceRead(ctx, w, off, n); err != nil {
					errs <- err
					return
				}
				got := make([]byte, n)
				if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, data[off:off+n]) {
					errs <- errors.New("spliced bytes differ")
					return
				}
				errs <- nil
			}()
			go func() {
				p := make([]byte, 4096)
				err := cl.ReadAt(ctx, p, i*4096)
				if err == nil && !bytes.Equal(p, data[i*4096:i*4096+4096]) {
					err = errors.New("read bytes differ")
				}
				errs <- err
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Fatalf("size %d: %v", n, err)
			}
		}
	}
}

// TestSpliceNoRoom splices a read into a pipe too small for it: the call
// ends with ErrNoSplice, and the connection goes on (the rest of the data
// was read and dropped).
func TestSpliceNoRoom(t *testing.T) {
	m := nbdtest.NewMem(1 << 20)
	m.Set(4096, []byte{7})
	s := nbdtest.Start(t, nbdtest.Exports{"a": m})
	cl := dial(t, s, "a", Options{MaxConns: 1})
	_, w := testPipe(t, 64<<10)
	if err := cl.SpliceRead(testCtx(t), w, 0, 512<<10); !errors.Is(err, ErrNoSplice) {
		t.Fatalf("splice into a small pipe: %v", err)
	}
	p := make([]byte, 1)
	if err := cl.ReadAt(testCtx(t), p, 4096); err != nil || p[0] != 7 || cl.Stats().Redials != 0 {
		t.Fatalf("after: %v %d %+v", err, p[0], cl.Stats())
	}
}

// TestSpliceNoDescriptor: a connection without a descriptor (here a
// net.Pipe; TLS likewise) does not splice.
func TestSpliceNoDescriptor(t *testing.T) {
	cl, _ := deafClient(t, Options{RequestTimeout: -1})
	_, w := testPipe(t, 64<<10)
	if err := cl.SpliceRead(context.Background(), w, 0, 4096); !errors.Is(err, ErrNoSplice) {
		t.Fatalf("splice on a net.Pipe: %v", err)
	}
}

// TestSpliceHole: a spliced read answered with a hole chunk puts zeros in
// its pipe (over a real socket: splice needs a descriptor).
func TestSpliceHole(t *testing.T) {
	path := serveUnix(t, func(srv net.Conn) {
		if fakeHandshake(srv) != nil {
			return
		}
		var h [requestSize]byte
		if _, err := io.ReadFull(srv, h[:]); err != nil {
			return
		}
		hole := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, 4096), 8192)
		srv.Write(chunkBytes(chunkFlagDone, chunkOffsetHole, binary.BigEndian.Uint64(h[8:]), hole))
		io.Copy(io.Discard, srv)
	})
	cl, err := Dial(testCtx(t), Options{Network: "unix", Address: path, BackoffMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r, w := testPipe(t, 64<<10)
	unix.Write(w, []byte{1}) // a byte before: the zeros must follow it
	if err := cl.SpliceRead(testCtx(t), w, 4096, 8192); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.IoctlGetInt(w, unix.TIOCINQ); err != nil || n != 1+8192 {
		t.Fatalf("pipe holds %d bytes (%v), want 1+8192", n, err)
	}
	got := make([]byte, 1+8192)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	if got[0] != 1 || !bytes.Equal(got[1:], make([]byte, 8192)) {
		t.Fatal("the pipe holds other bytes than the hole's zeros")
	}
}
