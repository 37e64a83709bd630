package nbdclient

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"syscall"
)

// A refused handshake should tell the operator what to change in the
// table, not only a reply number: these name the server's error replies
// and add the likely fix where one is clear.

// repErrNames are the NBD_REP_ERR_* replies by their low bits (proto.md).
var repErrNames = map[uint32]string{
	1: "NBD_REP_ERR_UNSUP", 2: "NBD_REP_ERR_POLICY", 3: "NBD_REP_ERR_INVALID",
	4: "NBD_REP_ERR_PLATFORM", 5: "NBD_REP_ERR_TLS_REQD", 6: "NBD_REP_ERR_UNKNOWN",
	7: "NBD_REP_ERR_SHUTDOWN", 8: "NBD_REP_ERR_BLOCK_SIZE_REQD", 9: "NBD_REP_ERR_TOO_BIG",
	10: "NBD_REP_ERR_EXT_HEADER_REQD",
}

// repErrTLSRequired is NBD_REP_ERR_TLS_REQD.
const repErrTLSRequired = repErrBit | 5

// refusal is the error for an export refused with reply typ.
func refusal(export string, typ uint32, msg string) error {
	name := repErrNames[typ&^repErrBit]
	if name == "" {
		name = fmt.Sprintf("reply %#x", typ)
	}
	hint := ""
	if typ == repErrTLSRequired {
		hint = " (the server requires TLS: name it nbds:// or nbds+unix://)"
	}
	return fmt.Errorf("nbdclient: export %q refused: %s: %s%s", export, name, msg, hint)
}

// hintClientCert adds to an error after the TLS handshake that the server
// may want a client certificate, when none was given: in TLS 1.3 a server
// that requires one and gets none says so only after the client's side of
// the handshake is done, often by just hanging up (EOF, reset).
func hintClientCert(err error, cfg *tls.Config) error {
	if err == nil || cfg == nil || len(cfg.Certificates) != 0 || cfg.GetClientCertificate != nil {
		return err
	}
	var alert tls.AlertError
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &alert) {
		return fmt.Errorf("%w (no client certificate was given: if the server verifies clients, put client-cert.pem and client-key.pem in the tls-certificates directory)", err)
	}
	return err
}
