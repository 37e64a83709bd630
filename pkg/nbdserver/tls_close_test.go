package nbdserver

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// startTLSCounted says hello, sends STARTTLS and moves the client onto TLS
// over a recordCounter, which it returns.
func (c *client) startTLSCounted(certs *testkit.TLSCerts) *recordCounter {
	c.t.Helper()
	c.hello(clientFixedNewstyle | clientNoZeroes)
	c.opt(optStartTLS, nil)
	if typ, d := c.optReply(optStartTLS); typ != repAck {
		c.t.Fatalf("STARTTLS: reply %#x %q", typ, d)
	}
	rc := &recordCounter{Conn: c.c}
	tc := tls.Client(rc, clientTLS(certs, false))
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.c, c.br = tc, bufio.NewReader(tc)
	return rc
}

// A client that ends the session itself, with DISC in transmission or
// ABORT in the handshake, gets the TLS session closed before the socket
// (proto.md: on DISC the server "MUST handle all outstanding requests,
// shut down the TLS session (if one is running), and close the TCP
// session"): after the reply to the write sent with DISC (or the ABORT's
// ACK) comes one more TLS record, the close_notify alert, and the client
// then reads a clean EOF.
func TestTLSClosedOnSoftDisconnect(t *testing.T) {
	_, sock, certs := tlsServer(t, false, false)
	for _, end := range []string{"disc", "abort"} {
		c := dial(t, sock)
		rc := c.startTLSCounted(certs)
		// A round trip first: whatever the server sent after the TLS
		// handshake is read before the records are counted.
		if end == "disc" {
			c.goExport("a")
		} else {
			c.opt(optList, nil)
			listReplies(c)
		}
		rc.counting.Store(true)
		if end == "abort" {
			c.opt(optAbort, nil)
			if typ, _ := c.optReply(optAbort); typ != repAck {
				t.Fatalf("ABORT: reply %#x", typ)
			}
		} else {
			b := requestBytes(nil, cmdWrite, 0, 1, 0, 512, fill(512))
			c.write(requestBytes(b, cmdDisc, 0, 2, 0, 0, nil)) // the write is in flight when DISC is read
			if e, ck := c.simple(); e != 0 || ck != 1 {
				t.Fatalf("write sent with DISC: errno %d, cookie %d", e, ck)
			}
		}
		if _, err := c.br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: read after it: %v, want EOF", end, err)
		}
		if n := rc.records.Load(); n != 2 {
			t.Errorf("%s: %d TLS records after it, want 2 (its reply, then close_notify)", end, n)
		}
	}
}
