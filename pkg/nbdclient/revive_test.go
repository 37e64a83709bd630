package nbdclient

import (
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
