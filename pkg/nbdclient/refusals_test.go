package nbdclient

import (
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
)

// A refusal names the reply and, for TLS_REQD, the fix; an unknown reply
// keeps its number.
func TestRefusalWording(t *testing.T) {
	for _, c := range []struct {
		typ  uint32
		want []string
	}{
		{repErrBit | 5, []string{`"vol" refused: NBD_REP_ERR_TLS_REQD: go away`, "name it nbds://"}},
		{repErrBit | 6, []string{"NBD_REP_ERR_UNKNOWN: go away"}},
		{repErrBit | 99, []string{"reply 0x80000063: go away"}},
	} {
		err := refusal("vol", c.typ, "go away").Error()
		for _, w := range c.want {
			if !strings.Contains(err, w) {
				t.Errorf("refusal %#x: %q lacks %q", c.typ, err, w)
			}
		}
		if c.typ != repErrBit|5 && strings.Contains(err, "nbds://") {
			t.Errorf("refusal %#x: %q gives the TLS hint", c.typ, err)
		}
	}
}

// The client-certificate hint is added to a hang-up after TLS only when no
// certificate was given, and never to other errors.
func TestClientCertHint(t *testing.T) {
	hangup := fmt.Errorf("nbdclient: read option reply: %w", io.EOF)
	const hint = "no client certificate was given"
	if err := hintClientCert(hangup, &tls.Config{}); !strings.Contains(err.Error(), hint) {
		t.Errorf("no certificate, EOF: %v", err)
	}
	if err := hintClientCert(fmt.Errorf("send option 8: %w", syscall.EPIPE), &tls.Config{}); !strings.Contains(err.Error(), hint) {
		t.Errorf("no certificate, broken pipe: %v", err)
	}
	if err := hintClientCert(tls.AlertError(116), &tls.Config{}); !strings.Contains(err.Error(), hint) {
		t.Errorf("no certificate, alert: %v", err)
	}
	withCert := &tls.Config{Certificates: []tls.Certificate{{}}}
	if err := hintClientCert(hangup, withCert); strings.Contains(err.Error(), hint) {
		t.Errorf("with a certificate: %v", err)
	}
	if err := hintClientCert(hangup, nil); strings.Contains(err.Error(), hint) {
		t.Errorf("plain text: %v", err)
	}
	if err := hintClientCert(fmt.Errorf("short NBD_REP_INFO"), &tls.Config{}); strings.Contains(err.Error(), hint) {
		t.Errorf("a protocol error: %v", err)
	}
}
