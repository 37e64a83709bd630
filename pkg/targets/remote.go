package targets

import (
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
//
// with query options timeout=<duration> (one request, retry included:
// default 30s) and connect-timeout=<duration> (a dial and handshake:
// default the open timeout). nbds:// and nbds+unix:// (TLS) are refused
// for now, by name.

var (
	// ErrBadURI is a backing device URI that cannot be used.
	ErrBadURI = errors.New("bad NBD URI")
	// ErrTLSUnsupported is an nbds URI: the client has no TLS yet.
	ErrTLSUnsupported = errors.New("TLS (nbds://) not yet supported")
)

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
	case "nbd", "nbd+unix":
	case "nbds", "nbds+unix":
		return nil, fmt.Errorf("targets: %s: %w", s, ErrTLSUnsupported)
	default:
		return nil, bad("scheme %q is not nbd or nbd+unix", u.Scheme)
	}
	if u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return nil, bad("user info, fragments and opaque URIs are not taken")
	}
	r := &remoteSpec{export: strings.TrimPrefix(u.Path, "/")}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, bad("query: %v", err)
	}
	if err := r.options(q, u.Scheme == "nbd+unix", bad); err != nil {
		return nil, err
	}
	if u.Scheme == "nbd" {
		if u.Hostname() == "" {
			return nil, bad("no host")
		}
		port := u.Port()
		if port == "" {
			port = defaultNBDPort
		}
		r.network, r.address = "tcp", net.JoinHostPort(u.Hostname(), port)
		r.key = "nbd://" + r.address + "/" + url.PathEscape(r.export)
		return r, nil
	}
	if u.Host != "" {
		return nil, bad("nbd+unix takes no host")
	}
	r.network = "unix"
	r.key = "nbd+unix:///" + url.PathEscape(r.export) + "?socket=" + url.QueryEscape(r.address)
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
		case "tls", "tls-certificates", "tls-verify-peer", "tls-hostname":
			return fmt.Errorf("%w (option %s)", ErrTLSUnsupported, k)
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

func positiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil && d <= 0 {
		err = errors.New("not positive")
	}
	return d, err
}
