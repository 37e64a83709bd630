package nbdserver

import (
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// The connections of an export and what Disconnect (remove --force) does
// to them.

// Disconnect ends the connections serving an export, cancelling the
// requests they have in flight, and gives the export back; a connection
// serving another export is not hurt.
func TestDisconnectExport(t *testing.T) {
	m := newMem(1 << 20)
	m.blockAt = 0
	m.block = make(chan struct{})
	s, sock := startServer(t, testExports{"a": m, "b": newMem(512)}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	other := dial(t, sock)
	other.connect("b", false)
	c.request(cmdRead, 0, 1, 0, 512, nil) // waits; Disconnect cancels it
	testkit.WaitFor(t, 10*time.Second, "the read in flight", func() bool { return s.InFlight(m) == 1 })
	if n := s.Disconnect(m); n != 1 {
		t.Fatalf("Disconnect ended %d connections", n)
	}
	c.expectClosed()
	if s.Connections(m) != 0 || m.opened.Load() != 0 {
		t.Fatal("connection or export still held")
	}
	other.request(cmdRead, 0, 1, 0, 512, nil)
	if e, _ := other.simple(); e != 0 {
		t.Fatal("other export's connection was hurt")
	}
}

// slowOpen is testExports whose Open, once it has the export, reports
// the name on opened and waits for proceed: the window between the
// catalogue handing a connection its export and the connection recording
// it.
type slowOpen struct {
	testExports
	opened  chan string
	proceed chan struct{}
}

func (s slowOpen) Open(name string) (Export, func(), error) {
	exp, release, err := s.testExports.Open(name)
	s.opened <- name
	<-s.proceed
	return exp, release, err
}

// Disconnect also ends a connection whose GO is opening the export as it
// runs (Exports.Open has returned it, the connection has not recorded it
// yet): the connection closes without a reply, never serving a request
// on a device its remover is about to close, and gives the export back.
// A connection opening another export meanwhile is not hurt.
func TestDisconnectExportBeingOpened(t *testing.T) {
	a, b := newMem(1<<20), newMem(1<<20)
	so := slowOpen{testExports{"a": a, "b": b}, make(chan string, 2), make(chan struct{})}
	s, sock := startServer(t, so, nil)
	ca, cb := dial(t, sock), dial(t, sock)
	for _, c := range []*client{ca, cb} {
		c.hello(clientFixedNewstyle | clientNoZeroes)
	}
	ca.opt(optGo, infoData("a"))
	cb.opt(optGo, infoData("b"))
	<-so.opened
	<-so.opened // both are in Open, holding their export
	if n := s.Disconnect(a); n != 0 {
		t.Fatalf("Disconnect ended %d connections, want 0 (none had recorded a yet)", n)
	}
	close(so.proceed)
	ca.expectClosed() // no GO reply: not even an ACK
	testkit.WaitFor(t, 10*time.Second, "a given back", func() bool { return a.opened.Load() == 0 })
	for {
		if typ, _ := cb.optReply(optGo); typ == repAck {
			break
		}
	}
	cb.request(cmdRead, 0, 1, 0, 4096, nil)
	if e, _ := cb.simple(); e != 0 {
		t.Fatalf("the connection opening b: read errno %d", e)
	}
	cb.read(4096)
	if n := s.Connections(b); n != 1 {
		t.Fatalf("Connections(b) = %d, want 1", n)
	}
}
