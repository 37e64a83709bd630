package targets

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRemote(t *testing.T) {
	good := []struct {
		uri, network, address, export, key string
		timeout, connect                   time.Duration
	}{
		{"nbd://store1/vol0", "tcp", "store1:10809", "vol0", "nbd://store1:10809/vol0", 0, 0},
		{"nbd://127.0.0.1:1234/", "tcp", "127.0.0.1:1234", "", "nbd://127.0.0.1:1234/", 0, 0},
		{"nbd://[::1]:99/a%20b?timeout=5s", "tcp", "[::1]:99", "a b", "nbd://[::1]:99/a%20b", 5 * time.Second, 0},
		{"nbd+unix:///x?socket=/run/./c.sock&connect-timeout=2s", "unix", "/run/c.sock", "x", "nbd+unix:///x?socket=%2Frun%2Fc.sock", 0, 2 * time.Second},
		{"nbd+unix:///?socket=/s", "unix", "/s", "", "nbd+unix:///?socket=%2Fs", 0, 0},
		{"nbds://store1/v?tls-certificates=/etc/pki/nbd", "tcp", "store1:10809", "v", "nbds://store1:10809/v", 0, 0},
		{"nbds+unix:///v?socket=/s&tls-hostname=h", "unix", "/s", "v", "nbds+unix:///v?socket=%2Fs", 0, 0},
	}
	for _, g := range good {
		r, err := parseRemote(g.uri)
		if err != nil {
			t.Errorf("%s: %v", g.uri, err)
			continue
		}
		if r.network != g.network || r.address != g.address || r.export != g.export || r.key != g.key || r.tls != strings.HasPrefix(g.uri, "nbds") ||
			r.timeout != g.timeout || r.connectTimeout != g.connect {
			t.Errorf("%s: got %+v", g.uri, r)
		}
	}
	bad := []struct {
		uri  string
		want error
	}{
		{"nbds+unix:///x?socket=/s", ErrBadURI}, // no name to verify by
		{"nbd://h/x?tls-certificates=/etc/pki", ErrBadURI},
		{"nbds://h/x?tls-certificates=pki", ErrBadURI},
		{"nbds://h/x?tls-verify-peer=no", ErrBadURI},
		{"nbd+unix:///x", ErrBadURI},
		{"nbd+unix:///x?socket=rel.sock", ErrBadURI},
		{"nbd+unix://host/x?socket=/s", ErrBadURI},
		{"nbd://h/x?socket=/s", ErrBadURI},
		{"nbd:///x", ErrBadURI},
		{"nbd://h/x?timeout=-1s", ErrBadURI},
		{"nbd://h/x?timeout=soon", ErrBadURI},
		{"nbd://h/x?timout=5s", ErrBadURI},
		{"nbd://h/x?timeout=1s&timeout=2s", ErrBadURI},
		{"nbd://user@h/x", ErrBadURI},
		{"http://h/x", ErrBadURI},
	}
	for _, b := range bad {
		if _, err := parseRemote(b.uri); !errors.Is(err, b.want) {
			t.Errorf("%s: %v, want %v", b.uri, err, b.want)
		}
	}
	if !IsRemote("nbd://h/x") || !IsRemote("nbds+unix:///x") || IsRemote("/dev/sda") || IsRemote("rel/a://b") {
		t.Error("IsRemote tells URIs from paths wrongly")
	}
}
