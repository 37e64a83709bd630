package table

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// dm submits every target's clone of a read, whichever fails, and each
// failed clone reaches its target's end_io: a read across two striped
// targets whose legs both fail turns both D. gdm stopped at the first
// failed piece, and the second target showed A.
func TestReadAcrossFailingTargetsReachesEach(t *testing.T) {
	for _, path := range []string{"read", "splice"} {
		t.Run(path, func(t *testing.T) { testReadAcrossFailingTargets(t, path == "splice") })
	}
}

// testReadAcrossFailingTargets reads with ReadAt, or with splice: the
// NBD server's path for a large read, which must reach each target too.
func testReadAcrossFailingTargets(t *testing.T, splice bool) {
	dir := t.TempDir()
	a, b := testkit.Sparse(t, dir, "a", 1<<20), testkit.Sparse(t, dir, "b", 1<<20)
	d := newLiveDevice(t, "0 8 striped 1 8 "+a+" 0\n8 8 striped 1 8 "+b+" 0\n")
	defer d.Close()
	for _, f := range []string{a, b} {
		if err := os.Truncate(f, 0); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if splice {
		_, err = spliceRead(t, d, 0, 8192)
	} else {
		err = d.ReadAt(context.Background(), make([]byte, 8192), 0)
	}
	if err == nil {
		t.Fatal("a read of two truncated files succeeded")
	}
	must(t, d.View(Live, func(tb *Table) error {
		for i, st := range tb.Status() {
			if !strings.HasSuffix(st, " 1 D") {
				t.Errorf("target %d status %q, want ...1 D: its piece of the read failed", i, st)
			}
		}
		return nil
	}))
}
