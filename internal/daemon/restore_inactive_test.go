package daemon

import (
	"os"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// A saved inactive table that cannot be built at start (its file gone)
// does not take the device down: it runs on its live table and serves
// clients, info says why the inactive table was lost, resume is refused
// until a load or clear replaces it, and nothing rewrites the state file
// on the way (restoring the file and restarting brings the table back).
func TestLostInactiveTableAtStart(t *testing.T) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	a := testkit.Sparse(t, dir, "a.img", 1<<20)
	lost := testkit.Sparse(t, dir, "lost.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 linear "+a+" 0")
	td.ok(t, "load", "d", "--table", "0 1024 linear "+lost+" 0")
	td.Shutdown()
	os.Remove(lost)
	saved := readStateFiles(dir)

	td2 := startTestDaemon(t, dir)
	i := td2.info(t, "d")
	if i.State != "ACTIVE" || i.Sectors != 2048 || i.InactiveTable || !strings.Contains(i.InactiveLost, "lost.img") {
		t.Fatalf("info after a start whose inactive table could not be built: %+v", i)
	}
	c := dialNBD(t, td2.addrs["nbd-unix"], "d")
	if e, _, err := c.do(0, 0, 512, nil); e != 0 || err != nil {
		t.Fatalf("a read from the live table: %d %v", e, err)
	}
	td2.fails(t, "could not be restored at start", "resume", "d")
	stateFilesUnchanged(t, saved, "a start with a lost inactive table")
	td2.ok(t, "clear", "d")
	if i := td2.info(t, "d"); i.InactiveLost != "" {
		t.Fatalf("after clear: %+v", i)
	}
	td2.ok(t, "resume", "d")
	td2.Shutdown()
	td3 := startTestDaemon(t, dir)
	if i := td3.info(t, "d"); i.State != "ACTIVE" || i.InactiveLost != "" || i.InactiveTable {
		t.Fatalf("after clear and a restart: %+v", i)
	}
}
