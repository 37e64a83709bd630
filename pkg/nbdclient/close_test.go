package nbdclient

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// firstServed serves the first n connections with serve, and holds every
// later one silent in its handshake (until the client hangs up), telling
// silent of each.
func firstServed(t *testing.T, n int32, serve func(net.Conn), silent chan<- struct{}) string {
	var conns atomic.Int32
	return serveUnix(t, func(c net.Conn) {
		if conns.Add(1) <= n {
			serve(c)
			return
		}
		silent <- struct{}{}
		io.Copy(io.Discard, c)
	})
}

// serveFlushes does the handshake (with the pool's flag) and answers every
// request with a simple reply: enough for flushes.
func serveFlushes(c net.Conn) {
	if fakeHandshakeFlags(c, FlagHasFlags|FlagSendDF|FlagSendFlush|FlagCanMultiConn) != nil {
		return
	}
	for {
		_, cookie, _, err := readReq(c)
		if err != nil {
			return
		}
		c.Write(simpleReplyBytes(0, cookie))
	}
}

// TestCloseStopsRedial: a call redialling, its dial stuck in the
// handshake of a server that went silent, fails with ErrClosed when the
// client is closed, as Close promises calls in flight, instead of with
// ErrDown once the dial timeout (a minute here) has passed.
func TestCloseStopsRedial(t *testing.T) {
	silent := make(chan struct{}, 4)
	path := firstServed(t, 1, serveFlushes, silent)
	cl, err := Dial(testCtx(t), Options{Network: "unix", Address: path, MaxConns: 1,
		DialTimeout: time.Minute, RequestTimeout: -1, BackoffMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cl.conns[0].kill(ErrDisconnected) // the connection dropped
	done := make(chan error, 1)
	go func() { done <- cl.Flush(context.Background()) }()
	<-silent // the call is redialling
	cl.Close()
	if err := wait(t, done, "a call redialling at Close"); !errors.Is(err, ErrClosed) {
		t.Fatalf("a call redialling at Close: %v", err)
	}
	if st := cl.Stats(); st.FailedDials != 0 {
		t.Fatalf("the dial Close stopped counted as failed: %+v", st)
	}
}

// TestCloseStopsRefill: a pool refilling a dead slot in the background,
// the refill's dial stuck in a silent handshake, loses that goroutine
// when the client is closed, not when the dial timeout (a minute here)
// has passed.
func TestCloseStopsRefill(t *testing.T) {
	silent := make(chan struct{}, 4)
	path := firstServed(t, 2, serveFlushes, silent)
	cl, err := Dial(testCtx(t), Options{Network: "unix", Address: path, MaxConns: 2,
		DialTimeout: time.Minute, BackoffMin: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cl.conns[1].kill(ErrDisconnected) // slot 1 dropped
	for !cl.refilling.Load() {        // round robin comes to slot 1, finds it dead, refills
		mustOK(t, cl.Flush(testCtx(t)))
	}
	<-silent // the refill is in its handshake
	cl.Close()
	testkit.WaitFor(t, 5*time.Second, "the refill gone after Close", func() bool {
		return !cl.refilling.Load() && !inRefill()
	})
}

// inRefill says whether a goroutine of the process is in a refill.
func inRefill() bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*Client).refill")
}
