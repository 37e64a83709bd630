package nbdclient

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// stallConn is a transport that, once stalled, takes no more bytes: a
// Write blocks until its deadline or Close, as on a socket whose server
// stopped reading and whose buffer is full. It counts the writes tried.
type stallConn struct {
	net.Conn
	stallNext atomic.Bool // the next write goes through, the later ones stall
	stalled   atomic.Bool
	tried     atomic.Int32
	cut       atomic.Int32 // stalled writes ended by Close (not their deadline)
	closed    chan struct{}
	once      sync.Once
	mu        sync.Mutex
	deadline  time.Time
}

func (c *stallConn) Write(p []byte) (int, error) {
	if !c.stalled.Load() {
		n, err := c.Conn.Write(p)
		if c.stallNext.Load() {
			c.stalled.Store(true)
		}
		return n, err
	}
	c.tried.Add(1)
	c.mu.Lock()
	d := c.deadline
	c.mu.Unlock()
	var expired <-chan time.Time
	if !d.IsZero() {
		expired = time.After(time.Until(d))
	}
	select {
	case <-c.closed:
		c.cut.Add(1)
		return 0, net.ErrClosed
	case <-expired:
		return 0, os.ErrDeadlineExceeded
	}
}

func (c *stallConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *stallConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// dialStalling dials a client of one connection to the UNIX socket at path
// over a stallConn, which it returns; a redial fails.
func dialStalling(t *testing.T, path string, opts Options) (*Client, *stallConn) {
	t.Helper()
	var mu sync.Mutex
	var sc *stallConn
	opts.Dial = func(ctx context.Context) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if sc != nil {
			return nil, errors.New("no second connection")
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return nil, err
		}
		sc = &stallConn{Conn: c, closed: make(chan struct{})}
		return sc, nil
	}
	opts.MaxConns, opts.BackoffMin = 1, time.Hour
	cl, err := Dial(testCtx(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return cl, sc
}

// A TLS leg whose request times out while its server neither answers nor
// reads is closed under TLS at once: no close_notify, which crypto/tls
// would wait up to 5 s to send, past the request's timeout, before the
// calls in flight failed.
func TestTLSAbortSendsNothing(t *testing.T) {
	certs := testkit.NewTLSCerts(t)
	m := nbdtest.NewMem(1 << 20)
	s := nbdtest.StartTLS(t, nbdtest.Exports{"a": m}, &tls.Config{Certificates: []tls.Certificate{certs.Server}})
	cl, sc := dialStalling(t, s.Path, Options{Export: "a", TLS: tlsConfig(t, certs.Dir, false), RequestTimeout: 300 * time.Millisecond})
	defer cl.Close()
	gate := make(chan struct{})
	m.SetGate(gate) // the server holds the read: no reply
	defer close(gate)
	sc.stallNext.Store(true) // the read's request goes out, then nothing
	if err := cl.ReadAt(testCtx(t), make([]byte, 4096), 0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("read from a server that holds it: %v, want ErrTimeout", err)
	}
	if n := sc.tried.Load(); n != 0 {
		t.Errorf("the timed-out TLS connection tried %d more write(s) (close_notify) before closing", n)
	}
}

// Closing a TLS leg says goodbye: NBD_CMD_DISC, then close_notify. When the
// socket takes the DISC and then nothing more, the stuck close_notify ends
// when the socket is closed under it (here by the reader, which sees the
// server hang up after the DISC; else after hangUpWait), not by crypto/tls's
// own 5 s deadline: before, the reader's kill closed the TLS layer, which
// waited for the stuck alert.
func TestTLSCloseNotifyBounded(t *testing.T) {
	certs := testkit.NewTLSCerts(t)
	s := nbdtest.StartTLS(t, nbdtest.Exports{"a": nbdtest.NewMem(1 << 20)}, &tls.Config{Certificates: []tls.Certificate{certs.Server}})
	cl, sc := dialStalling(t, s.Path, Options{Export: "a", TLS: tlsConfig(t, certs.Dir, false)})
	sc.stallNext.Store(true) // the DISC goes out, then nothing
	cl.Close()
	if n := sc.tried.Load(); n != 1 {
		t.Fatalf("Close tried %d write(s) after the DISC, want 1 (close_notify)", n)
	}
	if sc.cut.Load() != 1 {
		t.Error("the stuck close_notify ended by its own deadline, not by the transport's close after hangUpWait")
	}
}
