package nbdclient

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// TestBackWithoutIO: a client whose every connection dropped comes back
// by itself once the server is back, with no request to make it redial:
// a leg that shows D while its host is down shows A again when the host
// is up, whether or not I/O came its way meanwhile.
func TestBackWithoutIO(t *testing.T) {
	s := nbdtest.Start(t, nbdtest.Exports{"a": nbdtest.NewMem(1 << 20)})
	cl := dial(t, s, "a", Options{MaxConns: 2, BackoffMin: time.Millisecond, BackoffMax: 20 * time.Millisecond})
	s.Stop()
	testkit.WaitFor(t, 10*time.Second, "the client down", func() bool { return !cl.Connected() })
	s.Start()
	testkit.WaitFor(t, 10*time.Second, "the client back, no I/O asked", cl.Connected)
	if st := cl.Stats(); st.Redials == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCloseEndsRevive: Close ends the background redial of a client whose
// server is gone, in its backoff or in a dial that a server accepting and
// never answering holds: no goroutine of the client remains, and the
// dial's socket is closed.
func TestCloseEndsRevive(t *testing.T) {
	for _, silent := range []bool{false, true} {
		s := nbdtest.Start(t, nbdtest.Exports{"a": nbdtest.NewMem(1 << 20)})
		cl := dial(t, s, "a", Options{MaxConns: 1, BackoffMin: time.Millisecond, BackoffMax: time.Hour, DialTimeout: time.Hour})
		s.Stop()
		var c net.Conn
		if silent { // the socket's path now leads to a server that says nothing
			os.Remove(s.Path)
			l, err := net.Listen("unix", s.Path)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if c, err = l.Accept(); err != nil { // the revive's dial
				t.Fatal(err)
			}
			defer c.Close()
		} else {
			testkit.WaitFor(t, 10*time.Second, "a failed dial", func() bool { return cl.Stats().FailedDials > 0 })
		}
		cl.Close()
		testkit.WaitForValue(t, 10*time.Second, "no goroutine of the client left", func() (bool, string) {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			return !strings.Contains(stacks, "nbdclient.(*Client)") && !strings.Contains(stacks, "nbdclient.(*conn)"), stacks
		})
		if c != nil {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("the revive's socket after Close: %v", err)
			}
		}
	}
}
