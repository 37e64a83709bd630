package nbdclient

import (
	"context"
	"net"
	"path/filepath"
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
