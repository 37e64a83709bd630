package nbdclient

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestHeldBackWriteCompletes: on a connection whose writer cannot say how
// far it got (TLS, a net.Pipe), a write answered before the writer
// recorded it as written is held back for the writer to complete. A reply
// read just as the writer finished its last batch must not be held back
// after the writer looked for held-back calls for the last time: nobody
// would complete it, and the write would fail at the request timeout.
// Each write here is answered as soon as its payload is read.
func TestHeldBackWriteCompletes(t *testing.T) {
	cl := pipeClient(t, Options{RequestTimeout: 2 * time.Second}, func(srv net.Conn) {
		if fakeHandshake(srv) != nil {
			return
		}
		p := make([]byte, 4096)
		for {
			_, cookie, n, err := readReq(srv)
			if err != nil || n > uint32(len(p)) {
				return
			}
			if _, err := io.ReadFull(srv, p[:n]); err != nil {
				return
			}
			if _, err := srv.Write(simpleReplyBytes(0, cookie)); err != nil {
				return
			}
		}
	})
	ctx := testCtx(t)
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
		start := time.Now()
		if err := cl.WriteAt(ctx, make([]byte, 4096), 0, false); err != nil {
			t.Fatalf("write %d: %v after %v", i, err, time.Since(start))
		}
	}
}
