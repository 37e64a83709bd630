package nbdclient

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// dial connects a client to export name of s with opts' bounds.
func dial(t *testing.T, s *nbdtest.Server, name string, opts Options) *Client {
	t.Helper()
	opts.Network, opts.Address, opts.Export = "unix", s.Path, name
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

// serveUnix listens on a UNIX socket in a temporary directory and runs
// serve on each connection it accepts (then closes it), until the test
// ends. It returns the socket's path.
func serveUnix(t *testing.T, serve func(net.Conn)) string {
	path := filepath.Join(t.TempDir(), "fake.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { serve(c); c.Close() }()
		}
	}()
	return path
}

// readReq reads one request's header on a fake server's end: its type,
// cookie and length (a write's payload is left to read).
func readReq(c net.Conn) (typ uint16, cookie uint64, length uint32, err error) {
	var h [requestSize]byte
	if _, err = io.ReadFull(c, h[:]); err != nil {
		return
	}
	return binary.BigEndian.Uint16(h[6:]), binary.BigEndian.Uint64(h[8:]), binary.BigEndian.Uint32(h[24:]), nil
}

// simpleReplyBytes is a simple reply with error code errno for cookie.
func simpleReplyBytes(errno uint32, cookie uint64) []byte {
	b := binary.BigEndian.AppendUint32(nil, magicSimple)
	b = binary.BigEndian.AppendUint32(b, errno)
	return binary.BigEndian.AppendUint64(b, cookie)
}

// pipeClient dials a client of one connection, with opts' bounds, over a
// pipe whose server end runs serve (then is closed). A redial fails: a
// test sees the connection serve's replies left it with.
func pipeClient(t *testing.T, opts Options, serve func(srv net.Conn)) *Client {
	t.Helper()
	cli, srv := net.Pipe()
	go func() {
		defer srv.Close()
		serve(srv)
	}()
	first := true
	var mu sync.Mutex
	dial := func(context.Context) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if !first {
			return nil, errors.New("no second connection")
		}
		first = false
		return cli, nil
	}
	opts.Dial, opts.MaxConns, opts.BackoffMin = dial, 1, time.Hour
	cl, err := Dial(testCtx(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}
