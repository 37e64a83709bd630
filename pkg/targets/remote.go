package targets

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// A backing device may be an NBD export of another host, named by a URI
// (the NBD project's doc/uri.md):
//
//	nbd://host[:port]/export              TCP, port 10809 by default
//	nbd+unix:///export?socket=/path       a UNIX socket
//	nbds://..., nbds+unix://...           the same over TLS
//
// with query options timeout=<duration> (one request, retry included:
// default 30s) and connect-timeout=<duration> (a dial and handshake:
// the open timeout, which it may shorten, never stretch), and for nbds,
// as libnbd names them:
// tls-certificates=<dir> (ca-cert.pem to trust instead of the system's
// roots; client-cert.pem and client-key.pem, if there, are presented),
// tls-hostname=<name> (the name the server's certificate must carry:
// default the URI's host, required for nbds+unix), and
// tls-verify-peer=false or 0 (no verification at all: for tests only).

// ErrBadURI is a backing device URI that cannot be used.
var ErrBadURI = errors.New("bad NBD URI")

// defaultNBDPort is the IANA port for NBD.
const defaultNBDPort = "10809"

// uriScheme matches a URI's scheme; a device path that has one is a URI,
// never a file.
var uriScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// IsRemote says whether a table's device argument names a remote export
// (a URI) rather than a file or block device.
func IsRemote(path string) bool { return uriScheme.MatchString(path) }

// remoteSpec is a parsed NBD URI.
type remoteSpec struct {
	network, address, export string
	timeout, connectTimeout  time.Duration
	tls                      bool
	tlsDir, tlsHost          string // tls-certificates, tls-hostname
	tlsNoVerify              bool   // tls-verify-peer=false
	// key is the URI in canonical form: the device's identity, and its key
	// in a DevSet, so that two spellings of one export open it once.
	key string
}

// parseRemote parses and checks an NBD URI.
func parseRemote(s string) (*remoteSpec, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("targets: %s: %w: %v", s, ErrBadURI, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("targets: %s: %w: %s", s, ErrBadURI, fmt.Sprintf(format, args...))
	}
	switch u.Scheme {
	case "nbd", "nbd+unix", "nbds", "nbds+unix":
	default:
		return nil, bad("scheme %q is not nbd, nbds, nbd+unix or nbds+unix", u.Scheme)
	}
	if u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return nil, bad("user info, fragments and opaque URIs are not taken")
	}
	r := &remoteSpec{export: strings.TrimPrefix(u.Path, "/"), tls: strings.HasPrefix(u.Scheme, "nbds")}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, bad("query: %v", err)
	}
	unixSock := strings.HasSuffix(u.Scheme, "+unix")
	if err := r.options(q, unixSock, bad); err != nil {
		return nil, err
	}
	if !unixSock {
		if u.Hostname() == "" {
			return nil, bad("no host")
		}
		port := u.Port()
		if port == "" {
			port = defaultNBDPort
		}
		r.network, r.address = "tcp", net.JoinHostPort(u.Hostname(), port)
		r.tlsHost = cmp.Or(r.tlsHost, u.Hostname())
		r.key = u.Scheme + "://" + r.address + "/" + url.PathEscape(r.export)
		return r, nil
	}
	if u.Host != "" {
		return nil, bad("%s takes no host", u.Scheme)
	}
	if r.tls && r.tlsHost == "" && !r.tlsNoVerify {
		return nil, bad("nbds+unix needs tls-hostname= to verify the server by")
	}
	r.network = "unix"
	r.key = u.Scheme + ":///" + url.PathEscape(r.export) + "?socket=" + url.QueryEscape(r.address)
	return r, nil
}

// options takes in the query: the socket (UNIX only, required there, an
// absolute path) and the two timeouts. Anything else is refused, so that a
// misspelt option is not silently ignored.
func (r *remoteSpec) options(q url.Values, unix bool, bad func(string, ...any) error) error {
	for k, v := range q {
		if len(v) != 1 {
			return bad("option %s given %d times", k, len(v))
		}
		var err error
		switch k {
		case "socket":
			if !unix {
				return bad("socket= is for nbd+unix")
			}
			if !filepath.IsAbs(v[0]) {
				return bad("socket %q is not an absolute path", v[0])
			}
			r.address = filepath.Clean(v[0])
		case "timeout":
			r.timeout, err = positiveDuration(v[0])
		case "connect-timeout":
			r.connectTimeout, err = positiveDuration(v[0])
		case "tls-certificates", "tls-hostname", "tls-verify-peer":
			err = r.tlsOption(k, v[0])
		default:
			return bad("unknown option %q", k)
		}
		if err != nil {
			return bad("%s: %v", k, err)
		}
	}
	if unix && r.address == "" {
		return bad("nbd+unix needs ?socket=/path")
	}
	return nil
}

// tlsOption takes in one of the tls-* options, which only nbds URIs take.
func (r *remoteSpec) tlsOption(k, v string) error {
	if !r.tls {
		return errors.New("only nbds URIs take tls-* options")
	}
	switch k {
	case "tls-certificates":
		if !filepath.IsAbs(v) {
			return fmt.Errorf("%q is not an absolute path", v)
		}
		r.tlsDir = filepath.Clean(v)
	case "tls-hostname":
		r.tlsHost = v
	case "tls-verify-peer":
		// doc/uri.md spells it 0 or 1; libnbd's false and true too.
		switch v {
		case "0", "false":
			r.tlsNoVerify = true
		case "1", "true":
			r.tlsNoVerify = false
		default:
			return fmt.Errorf("%q is not 0, 1, false or true", v)
		}
	}
	return nil
}

func positiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil && d <= 0 {
		err = errors.New("not positive")
	}
	return d, err
}
