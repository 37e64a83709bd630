package nbdclient

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// OnChange is called once when the last connection drops and once when a
// redial brings one back: not for each connection of the pool, and not
// while the state stays.
func TestOnChange(t *testing.T) {
	s := nbdtest.Start(t, nbdtest.Exports{"a": nbdtest.NewMem(1 << 20)})
	changes := make(chan bool, 16)
	var client atomic.Pointer[Client]
	cl := dial(t, s, "a", Options{MaxConns: 3, BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond,
		OnChange: func() { changes <- client.Load().Connected() }})
	client.Store(cl)
	if len(changes) != 0 {
		t.Fatalf("OnChange called %d times at the dial", len(changes))
	}
	s.Stop()
	select {
	case up := <-changes:
		if up {
			t.Fatal("OnChange after the server stopped saw the client up")
		}
	case <-time.After(10 * time.Second): // a bound on the test
		t.Fatal("no OnChange when the server stopped")
	}
	s.Start()
	testkit.WaitFor(t, 10*time.Second, "a read after the server came back", func() bool {
		return cl.ReadAt(context.Background(), make([]byte, 512), 0) == nil
	})
	select {
	case up := <-changes:
		if !up {
			t.Fatal("OnChange after the redial saw the client down")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no OnChange when a connection came back")
	}
	for i := 0; i < 20; i++ { // more reads may redial the pool's other slots
		cl.ReadAt(context.Background(), make([]byte, 512), 0)
	}
	cl.Close()
	for len(changes) > 0 {
		if up := <-changes; up {
			t.Fatal("OnChange said up again while the client stayed up")
		}
	}
}
