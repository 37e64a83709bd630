package nbdclient

import (
	"bufio"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// TestFlappingServerBackoff: a server that completes the handshake and
// hangs up at once (an export that breaks as soon as it is used, a proxy
// whose backend is gone) must not be redialled in a loop with no wait:
// the background redial backs off as after a failed dial.
func TestFlappingServerBackoff(t *testing.T) {
	var dials atomic.Int32
	path := serveUnix(t, func(c net.Conn) {
		dials.Add(1)
		fakeHandshake(c) // then hang up
	})
	start := time.Now()
	// A connection counts as flapping if it dies within BackoffMax of its
	// dial, as its reader sees the death: 1 s, not less, or a loaded
	// machine's scheduling makes a quick death look like a connection
	// that lived (CI once saw 6 dials in 472 ms with a 200 ms bound).
	cl, err := Dial(testCtx(t), Options{Network: "unix", Address: path, BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Six dials: the backoff between them doubles from 50 ms, so they
	// take at least 50+100+200+400+800 ms; without it, milliseconds. The
	// bound on the wait only catches a redial that stopped (CI saw one
	// dial in a minute when a death could go untold: TestGoneSeesDead),
	// and the failure says how many dials came.
	testkit.WaitForValue(t, time.Minute, "6 dials", func() (bool, string) {
		n := dials.Load()
		return n >= 6, fmt.Sprintf("%d dials after %v", n, time.Since(start).Round(time.Millisecond))
	})
	if d := time.Since(start); d < time.Second {
		t.Fatalf("6 dials in %v to a server that hangs up after each handshake", d)
	}
}

// TestDeathPacedBeforeSeen: whoever sees a connection dead (the revive
// deciding whether to wait) sees the pacing its death set. When that
// pacing was set by a goroutine started after the death, a revive that
// ran first redialled at once, and CI saw the flapping server above
// dialled 6 times in 761 ms.
func TestDeathPacedBeforeSeen(t *testing.T) {
	for range 20 {
		path := serveUnix(t, func(c net.Conn) { fakeHandshake(c) })
		// Backoffs far longer than the test: the revive waits them out
		// and never dials again while the test looks.
		cl, err := Dial(testCtx(t), Options{Network: "unix", Address: path, BackoffMin: time.Hour, BackoffMax: 2 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		cl.mu.Lock()
		c := cl.conns[0]
		cl.mu.Unlock()
		<-c.dead
		cl.pace.Lock()
		quiet := time.Until(cl.quietUntil)
		cl.pace.Unlock()
		cl.Close()
		if quiet < 59*time.Minute {
			t.Fatalf("the connection is dead and the revive's quiet time is %v away, not the hour its death set", quiet)
		}
	}
}

// TestGoneSeesDead: a connection's end tells the client in two halves,
// and whoever each half tells sees what it must. onDead (the revive's
// pacing) runs before anyone can see the connection dead; onGone (which
// starts the revive) runs after, and finds the connection dead: a
// noteState that looked earlier found it alive and started no revive, and
// CI saw a flapping server dialled once in a minute.
func TestGoneSeesDead(t *testing.T) {
	for range 50 {
		cli, srv := net.Pipe()
		var c *conn
		born := make(chan struct{})
		aliveAtDead, aliveAtGone := make(chan bool, 1), make(chan bool, 1)
		onDead := func(time.Duration) { <-born; aliveAtDead <- c.alive() }
		onGone := func() { aliveAtGone <- c.alive() }
		c = newConn(cli, bufio.NewReader(cli), Info{}, 4, onDead, onGone, nil)
		close(born)
		srv.Close() // the reader sees EOF and kills the connection
		if !<-aliveAtDead {
			t.Fatal("onDead found the connection already seen dead")
		}
		if <-aliveAtGone {
			t.Fatal("onGone found the connection still alive: a revive started there would not start")
		}
	}
}
