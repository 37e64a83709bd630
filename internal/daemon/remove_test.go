package daemon

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/targets"
)

// The seed's third bug, as a test: after remove returns, no backing file of
// the device is open (even right after a client disconnected) and the name
// can be created again at once.
func TestRemoveAfterDisconnectClosesEverything(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, t.TempDir(), "a.img", 4<<20)
	dir := filepath.Dir(a)
	b := testkit.Sparse(t, dir, "b.img", 4<<20)
	for round := range 3 {
		td.ok(t, "create", "d", "--table", "0 4096 linear "+a+" 0", "--table", "4096 4096 striped 2 8 "+a+" 4096 "+b+" 0")
		td.ok(t, "load", "d", "--table", "0 8192 linear "+b+" 0") // an inactive table holds files too
		if n := len(openFiles(t, os.Getpid(), dir)); n != 3 {
			t.Fatalf("round %d: %d backing files open, want 3 (a, b live; b inactive)", round, n)
		}
		c := dialNBD(t, td.addrs["nbd-unix"], "d")
		if e, _, err := c.do(1, 0, 4096, bytes.Repeat([]byte{1}, 4096)); e != 0 || err != nil {
			t.Fatalf("write: %d %v", e, err)
		}
		c.disconnect()
		td.ok(t, "remove", "d")
		if open := openFiles(t, os.Getpid(), dir); len(open) != 0 {
			t.Fatalf("round %d: after remove, still open: %v", round, open)
		}
	}
}

func TestRemoveBusyAndForce(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 linear "+a+" 0")
	c := dialNBD(t, td.addrs["nbd-unix"], "d")
	if e, _, _ := c.do(0, 0, 512, nil); e != 0 {
		t.Fatalf("read: %d", e)
	}
	td.fails(t, "device busy", "remove", "d")
	if i := td.info(t, "d"); i.OpenConnections != 1 {
		t.Fatalf("info with a client: %+v", i)
	}
	// Suspend so the client's next request waits in the device; --force
	// must fail it and disconnect.
	td.ok(t, "suspend", "d")
	type result struct {
		errno uint32
		err   error
	}
	resc := make(chan result, 1)
	go func() {
		e, _, err := c.do(0, 0, 512, nil)
		resc <- result{e, err}
	}()
	testkit.WaitFor(t, 10*time.Second, "the request in flight", func() bool { return td.d.nbd.InFlight(mustGet(t, td, "d").exp) == 1 })
	td.ok(t, "remove", "d", "--force")
	// Failed: an error reply, or the connection closed under it.
	if r := <-resc; r.err == nil && r.errno == 0 {
		t.Fatal("a request on a force-removed device succeeded")
	}
	if _, _, err := c.do(0, 0, 512, nil); err == nil {
		t.Fatal("the force-removed device's connection still answers")
	}
	if open := openFiles(t, os.Getpid(), filepath.Dir(a)); len(open) != 0 {
		t.Fatalf("after remove --force, still open: %v", open)
	}
	td.ok(t, "create", "d", "--table", "0 8 zero") // the name is free
}

func mustGet(t *testing.T, td *testDaemon, name string) *managed {
	m, err := td.d.get(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The seed's second problem: a holder that lingers (a long status or
// block-status call) delays a table's destruction but never sees it
// destroyed.
func TestLingeringHolderDelaysDestroy(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 linear "+a+" 0")
	m := mustGet(t, td, "d")
	held, err := m.dev.Get(context.Background()) // what a long block-status call holds
	if err != nil {
		t.Fatal(err)
	}
	td.ok(t, "load", "d", "--table", "0 1024 linear "+a+" 0")
	done := make(chan struct{})
	go func() {
		td.ok(t, "resume", "d", "--live")
		close(done)
	}()
	testkit.WaitFor(t, 10*time.Second, "the destroy to start", func() bool { return m.dev.Stats().Destroying.Load() == 1 })
	// The new table serves I/O; the old one is still whole for its holder.
	if info := td.d.infoOf(m); info.Sectors != 1024 {
		t.Fatalf("live table not swapped: %+v", info)
	}
	var covered int64
	if err := held.Extents(context.Background(), 0, 2048*512, func(e targets.Extent) bool { covered += e.Length; return true }); err != nil || covered != 2048*512 {
		t.Fatalf("lingering block status: %v, covered %d", err, covered)
	}
	if held.Destroyed() || held.Devs().Devs()[0].Closed() {
		t.Fatal("table destroyed under a lingering holder")
	}
	if err := held.ReadAt(context.Background(), make([]byte, 4096), 0); err != nil {
		t.Fatalf("lingering holder's read: %v", err)
	}
	select {
	case <-done:
		t.Fatal("resume finished destroying while a holder remained")
	default:
	}
	held.Put()
	<-done
	if !held.Destroyed() {
		t.Fatal("old table not destroyed after its holder left")
	}
}
