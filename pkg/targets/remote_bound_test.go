package targets

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// The daemon's open timeout (--open-timeout) bounds every open of a
// backing device, a remote's dial and handshake included: a table's
// connect-timeout may shorten it, not stretch it. A URI asking for an
// hour to a server that never answers held the load verb (and the
// device's verb lock) for that hour.
func TestRemoteConnectTimeoutBoundedByOpenTimeout(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "mute.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accept and say nothing: a handshake that never comes
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	// Not closed on failure: Close would wait for the hung Open.
	s := NewDevSetWith(false, OpenOptions{Timeout: 100 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := s.Open("nbd+unix:///x?socket=" + sock + "&connect-timeout=1h")
		done <- err
	}()
	select {
	case err := <-done:
		s.Close()
		if err == nil {
			t.Fatal("a server that never answered was opened")
		}
	case <-time.After(10 * time.Second): // a bound on the test, far above the 100ms asked
		t.Fatal("the open outlived the 100ms open timeout by 10s: connect-timeout=1h overrode it")
	}
}
