package nbdclient

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cachingServer is a fake server without CAN_MULTI_CONN that keeps each
// connection's writes in a cache of that connection's until a FLUSH on it
// (the spec lets it: without CAN_MULTI_CONN a flush covers only the
// writes completed on its own connection); a connection that drops
// loses its cache. stored counts the writes flushed to its store.
type cachingServer struct {
	mu     sync.Mutex
	stored int
}

func (s *cachingServer) serve(c net.Conn) {
	if fakeHandshakeFlags(c, FlagHasFlags|FlagSendFlush) != nil {
		return
	}
	cached := 0
	for {
		typ, cookie, n, err := readReq(c)
		if err != nil {
			return // the cache is lost
		}
		switch typ {
		case cmdWrite:
			if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
				return
			}
			cached++
		case cmdFlush:
			s.mu.Lock()
			s.stored += cached
			s.mu.Unlock()
			cached = 0
		}
		c.Write(simpleReplyBytes(0, cookie))
	}
}

// TestFlushAfterLostWrites: a write completed on a connection that then
// dropped, before any flush covered it, may be lost with that
// connection on a server without CAN_MULTI_CONN: a flush on the new
// connection does not cover it. That flush must not report the write
// durable: it fails with EIO, once, as a write-back error does.
func TestFlushAfterLostWrites(t *testing.T) {
	var srv cachingServer
	path := serveUnix(t, srv.serve)
	cl, err := Dial(testCtx(t), Options{Network: "unix", Address: path, BackoffMin: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t)
	mustOK(t, cl.WriteAt(ctx, make([]byte, 512), 0, false))
	mustOK(t, cl.Flush(ctx)) // covered: nothing lost below
	mustOK(t, cl.WriteAt(ctx, make([]byte, 512), 512, false))
	cl.conns[0].kill(ErrDisconnected) // the connection drops, its write unflushed
	if err := cl.Flush(ctx); !errors.Is(err, syscall.EIO) {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		t.Fatalf("flush after a connection with an unflushed write dropped: %v (writes stored: %d of 2)", err, srv.stored)
	}
	mustOK(t, cl.Flush(ctx)) // said once
	mustOK(t, cl.WriteAt(ctx, make([]byte, 512), 0, true))
	cl.conns[0].kill(ErrDisconnected) // a FUA write is durable once done
	mustOK(t, cl.Flush(ctx))
}
