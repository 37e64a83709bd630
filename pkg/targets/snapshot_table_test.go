package targets_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/table"
)

// snapDevice is a device with a table loaded from text and resumed.
func snapDevice(t *testing.T, name, text string) *table.Device {
	t.Helper()
	d := table.NewDevice(name, false, nil)
	t.Cleanup(func() { d.Close() })
	if err := d.LoadText(text); err != nil {
		t.Fatal(err)
	}
	if err := d.Resume(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	return d
}

func devRead(t *testing.T, d *table.Device, off, n int64) []byte {
	t.Helper()
	p := make([]byte, n)
	if err := d.ReadAt(context.Background(), p, off); err != nil {
		t.Fatal(err)
	}
	return p
}

// Through pkg/table: an origin device and a snapshot device, separate
// tables; the snapshot device reloaded (the table's hooks hand the store
// over); `resume --live` refused; and the oracle cases' one-table form.
func TestSnapshotThroughTables(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	orig := testkit.Sparse(t, dir, "origin", 1<<20)
	cow := testkit.Sparse(t, dir, "cow", 2<<20)
	old := bytes.Repeat([]byte{0x5A}, 1<<20)
	if err := os.WriteFile(orig, old, 0o600); err != nil {
		t.Fatal(err)
	}
	o := snapDevice(t, "origin", "0 2048 snapshot-origin "+orig)
	snapLine := fmt.Sprintf("0 2048 snapshot %s %s P 8", orig, cow)
	s := snapDevice(t, "snap", snapLine)
	if err := o.WriteAt(ctx, make([]byte, 8192), 4096); err != nil {
		t.Fatal(err)
	}
	if err := s.LoadText(snapLine); err != nil {
		t.Fatal(err)
	}
	if err := s.Resume(ctx, true); !errors.Is(err, table.ErrLiveSwapRefused) {
		t.Fatalf("resume --live of a snapshot: %v, want ErrLiveSwapRefused", err)
	}
	if err := s.Resume(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := o.WriteAt(ctx, make([]byte, 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	if got := devRead(t, s, 0, 1<<20); !bytes.Equal(got, old) {
		t.Fatal("snapshot device after reload does not read the origin's old data")
	}

	both := testkit.Sparse(t, dir, "origin2", 1<<20)
	if err := os.WriteFile(both, old, 0o600); err != nil {
		t.Fatal(err)
	}
	one := snapDevice(t, "one", fmt.Sprintf("0 1024 snapshot-origin %s\n1024 1024 snapshot %s %s N 8",
		both, both, testkit.Sparse(t, dir, "cow2", 1<<20)))
	if err := one.WriteAt(ctx, make([]byte, 512<<10), 0); err != nil {
		t.Fatal(err)
	}
	if got := devRead(t, one, 512<<10, 512<<10); !bytes.Equal(got, old[:512<<10]) {
		t.Fatal("one-table origin+snapshot: snapshot half does not read the old data")
	}
}

// `gdm table` prints a snapshot line as `dmsetup table` does, with the
// chunk size in use where the line gave 0, with --showkeys too (dm's
// --showkeys changes only keys); the table's text (what the daemon saves)
// stays as loaded.
func TestSnapshotTableShowsChunkInUse(t *testing.T) {
	dir := t.TempDir()
	orig := testkit.Sparse(t, dir, "origin", 1<<20)
	cow := testkit.Sparse(t, dir, "cow", 1<<20)
	line := fmt.Sprintf("0 2048 snapshot %s %s P 0", orig, cow)
	d := snapDevice(t, "snap", line)
	err := d.View(table.Live, func(tb *table.Table) error {
		want := fmt.Sprintf("0 2048 snapshot %s %s P 32\n", orig, cow)
		for _, keys := range []bool{false, true} {
			if got := tb.Shown(keys); got != want {
				t.Errorf("table shown (showKeys %v) %q, want %q", keys, got, want)
			}
		}
		if got := tb.Text(); got != line+"\n" {
			t.Errorf("table text %q, want the line as loaded %q", got, line+"\n")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
