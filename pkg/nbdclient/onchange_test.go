package nbdclient

import (
	"context"
	"net"
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

// A pool connection that dies while Dial is still filling the pool (a
// flapping server) tells no one while the client has no pool yet: the
// client is up, and the next real outage must raise OnChange. A death
// told early once made OnChange say "down" during Dial and left the
// client's state at down, and the outage that followed raised nothing.
func TestDeathDuringDialLeavesStateUp(t *testing.T) {
	changes := make(chan bool, 16)
	var client atomic.Pointer[Client]
	drop := make(chan struct{}) // hangs up the first connection
	var accepted atomic.Int32
	flags := FlagHasFlags | FlagSendFlush | FlagCanMultiConn
	path := serveUnix(t, func(c net.Conn) {
		switch accepted.Add(1) {
		case 1: // the client's first connection: serves until dropped
			fakeHandshakeFlags(c, flags)
			<-drop
		case 2: // the second: hangs up after its handshake
			fakeHandshakeFlags(c, flags)
		case 3: // the third fails, once the second's death was told (or 1 s)
			select {
			case <-time.After(time.Second):
			case up := <-changes:
				changes <- up
			}
		} // any later one (the revive's) fails at once
	})
	cl, err := Dial(testCtx(t), Options{Network: "unix", Address: path, MaxConns: 3, BackoffMin: time.Hour, BackoffMax: 2 * time.Hour,
		OnChange: func() {
			if c := client.Load(); c != nil {
				changes <- c.Connected()
			} else {
				changes <- false
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	client.Store(cl)
	if !cl.Connected() || len(changes) != 0 {
		t.Fatalf("after Dial: connected %v, %d OnChange calls (want up, none)", cl.Connected(), len(changes))
	}
	close(drop)
	select {
	case up := <-changes:
		if up {
			t.Fatal("OnChange after the last connection dropped saw the client up")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no OnChange when the last connection dropped")
	}
}
