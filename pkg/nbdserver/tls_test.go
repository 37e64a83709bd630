package nbdserver

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// tlsServer serves export "a" with TLS offered (required when required is
// set); clientCerts makes the server ask for and verify client
// certificates signed by the test CA.
func tlsServer(t *testing.T, required, clientCerts bool) (*Server, string, *testkit.TLSCerts) {
	t.Helper()
	certs := testkit.NewTLSCerts(t)
	cfg := &tls.Config{Certificates: []tls.Certificate{certs.Server}, MinVersion: tls.VersionTLS12}
	if clientCerts {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, certs.Pool
	}
	s, sock := startServer(t, testExports{"a": newMem(1 << 20)}, func(s *Server) {
		s.TLS, s.TLSRequired = cfg, required
	})
	return s, sock, certs
}

// clientTLS is the test client's side of the TLS handshake: it trusts the
// test CA and checks the server's name.
func clientTLS(certs *testkit.TLSCerts, withCert bool) *tls.Config {
	cfg := &tls.Config{RootCAs: certs.Pool, ServerName: "localhost"}
	if withCert {
		cfg.Certificates = []tls.Certificate{certs.Client}
	}
	return cfg
}

// startTLS sends STARTTLS, expects its ACK and moves the client onto TLS;
// it returns the handshake's error.
func (c *client) startTLS(cfg *tls.Config) error {
	c.t.Helper()
	c.opt(optStartTLS, nil)
	if typ, d := c.optReply(optStartTLS); typ != repAck {
		c.t.Fatalf("STARTTLS: reply %#x %q", typ, d)
	}
	tc := tls.Client(c.c, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.c, c.br = tc, bufio.NewReader(tc)
	return nil
}

// After STARTTLS the options and transmission run inside TLS: data
// written is read back, replies of a batch arrive whole, and a second
// STARTTLS is invalid.
func TestTLSTransmission(t *testing.T) {
	s, sock, certs := tlsServer(t, false, false)
	c := dial(t, sock)
	c.hello(clientFixedNewstyle | clientNoZeroes)
	if err := c.startTLS(clientTLS(certs, false)); err != nil {
		t.Fatal(err)
	}
	c.opt(optStartTLS, nil)
	if typ, _ := c.optReply(optStartTLS); typ != repErrInvalid {
		t.Fatalf("STARTTLS inside TLS: %#x, want ERR_INVALID", typ)
	}
	if size, _ := c.goExport("a"); size != 1<<20 {
		t.Fatalf("size %d", size)
	}
	var b []byte
	for i := range uint64(16) {
		b = requestBytes(b, cmdWrite, 0, i, i*65536, 65536, bytes.Repeat([]byte{byte(i + 1)}, 65536))
	}
	c.write(b)
	for range 16 {
		if e, _ := c.simple(); e != 0 {
			t.Fatalf("write: errno %d", e)
		}
	}
	for i := range uint64(16) {
		c.request(cmdRead, 0, 100+i, i*65536, 65536, nil)
		if e, ck := c.simple(); e != 0 || ck != 100+i {
			t.Fatalf("read: errno %d cookie %d", e, ck)
		}
		if got := c.read(65536); !bytes.Equal(got, bytes.Repeat([]byte{byte(i + 1)}, 65536)) {
			t.Fatalf("read %d back: % x...", i, got[:4])
		}
	}
	if n := s.Stats().TLSSessions.Load(); n != 1 {
		t.Fatalf("TLS sessions %d, want 1", n)
	}
}

// Where TLS is required, nothing but STARTTLS and ABORT is answered before
// it (export names do not leak); EXPORT_NAME, which has no error reply,
// and a plain newstyle client, which cannot start TLS, are disconnected.
func TestTLSRequired(t *testing.T) {
	s, sock, certs := tlsServer(t, true, false)
	c := dial(t, sock)
	c.hello(clientFixedNewstyle | clientNoZeroes)
	for _, o := range []struct {
		typ  uint32
		data []byte
	}{{optList, nil}, {optInfo, infoData("a")}, {optGo, infoData("a")}, {optStructuredReply, nil}, {optListMetaContext, metaData("a")}} {
		c.opt(o.typ, o.data)
		if typ, _ := c.optReply(o.typ); typ != repErrTLSReqd {
			t.Fatalf("option %d before TLS: %#x, want ERR_TLS_REQD", o.typ, typ)
		}
	}
	if err := c.startTLS(clientTLS(certs, false)); err != nil {
		t.Fatal(err)
	}
	c.opt(optList, nil)
	if typ, d := c.optReply(optList); typ != repServer || string(d[4:]) != "a" {
		t.Fatalf("LIST inside TLS: %#x %q", typ, d)
	}

	before := s.Stats().HandshakeFailed[HandshakeTLS].Load()
	c = dial(t, sock)
	c.hello(clientFixedNewstyle | clientNoZeroes)
	c.opt(optExportName, []byte("a"))
	c.expectClosed()
	c = dial(t, sock)
	c.hello(0)
	c.expectClosed()
	testkit.WaitFor(t, 10*time.Second, "two TLS refusals counted", func() bool {
		return s.Stats().HandshakeFailed[HandshakeTLS].Load() == before+2
	})
}

// STARTTLS with data is invalid and the connection goes on; bytes sent
// behind STARTTLS, before the TLS handshake, end the connection rather
// than being read as if they came through TLS.
func TestTLSStartMisuse(t *testing.T) {
	_, sock, certs := tlsServer(t, false, false)
	c := dial(t, sock)
	c.hello(clientFixedNewstyle | clientNoZeroes)
	c.opt(optStartTLS, []byte{0})
	if typ, _ := c.optReply(optStartTLS); typ != repErrInvalid {
		t.Fatalf("STARTTLS with data: %#x, want ERR_INVALID", typ)
	}
	if err := c.startTLS(clientTLS(certs, false)); err != nil {
		t.Fatalf("STARTTLS after the invalid one: %v", err)
	}

	c = dial(t, sock)
	c.hello(clientFixedNewstyle | clientNoZeroes)
	b := optBytes(optStartTLS, nil)
	c.write(append(b, optBytes(optList, nil)...)) // LIST injected before TLS
	if typ, _ := c.optReply(optStartTLS); typ != repAck {
		t.Fatalf("STARTTLS: %#x", typ)
	}
	c.expectClosed()
}

// With client certificates required, a client without one is refused in
// the TLS handshake and one with a certificate of the CA gets in.
func TestTLSClientCertificates(t *testing.T) {
	s, sock, certs := tlsServer(t, true, true)
	c := dial(t, sock)
	c.hello(clientFixedNewstyle | clientNoZeroes)
	if err := c.startTLS(clientTLS(certs, false)); err == nil {
		// TLS 1.3 reports the refusal at the client's first read (its
		// write may already find the connection closed).
		c.c.Write(optBytes(optList, nil))
		if _, err := c.br.ReadByte(); err == nil {
			t.Fatal("a client without a certificate got a reply")
		}
	}
	testkit.WaitFor(t, 10*time.Second, "the refusal counted", func() bool {
		return s.Stats().HandshakeFailed[HandshakeTLS].Load() == 1
	})
	c = dial(t, sock)
	c.hello(clientFixedNewstyle | clientNoZeroes)
	if err := c.startTLS(clientTLS(certs, true)); err != nil {
		t.Fatal(err)
	}
	if size, _ := c.goExport("a"); size != 1<<20 {
		t.Fatalf("size %d", size)
	}
}
