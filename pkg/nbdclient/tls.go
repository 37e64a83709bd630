package nbdclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
)

// ErrTLSRefused is a server that would not start TLS when the client asked
// for it: the client does not fall back to plain text.
var ErrTLSRefused = errors.New("nbdclient: server refused TLS")

// startTLS sends NBD_OPT_STARTTLS and, once the server agrees, runs the
// TLS handshake over c under ctx. The server must not have sent anything
// past its ACK: bytes already buffered in plain text would be injected
// into the protected session.
func startTLS(ctx context.Context, c net.Conn, r *bufio.Reader, cfg *tls.Config) (net.Conn, *bufio.Reader, error) {
	o := optConn{w: c, r: r}
	ok, err := o.simple(optStartTLS, nil)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, ErrTLSRefused
	}
	if r.Buffered() != 0 {
		return nil, nil, protoErr("data after the STARTTLS reply")
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, nil, fmt.Errorf("nbdclient: TLS handshake: %w", err)
	}
	return tc, bufio.NewReaderSize(tc, 64<<10), nil
}
