package targets_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/table"
	"github.com/gdm-project/gdm/pkg/targets"
)

// A delayed request is inside the target's method, so the table counts it
// as a holder: a suspend cannot finish draining until the delay ends, and
// it does not wait out the delay because PreSuspend lets the request go.
func TestDelayHeldRequestHoldsTheTableUntilPreSuspend(t *testing.T) {
	dev := testkit.Sparse(t, t.TempDir(), "dev", 1<<20)
	d := table.NewDevice("delayed", false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer d.Close()
	line := "0 2048 delay " + dev + " 0 3600000"
	if err := d.LoadText(line); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Resume(ctx, false); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.ReadAt(ctx, make([]byte, 4096), 0) }()
	status := func() string {
		st, _ := d.Status(table.Live, targets.StatusInfo)
		return strings.Join(st, "\n")
	}
	testkit.WaitFor(t, 10*time.Second, "read held", func() bool { return status() == "1 0 0" })
	var holders int64
	d.View(table.Live, func(tb *table.Table) error { holders = tb.Holders(); return nil })
	if holders != 2 { // the held read, and View itself
		t.Fatalf("%d holders while a read is held, want 2 (it and View)", holders)
	}
	select {
	case err := <-done:
		t.Fatalf("read returned (%v) while held", err)
	default:
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.Suspend(sctx, false); err != nil { // PreSuspend releases, then the drain
		t.Fatalf("suspend with a held read: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := status(); got != "0 0 0" {
		t.Fatalf("INFO %q after suspend", got)
	}
	tbl, _ := d.Status(table.Live, targets.StatusTable)
	if want := dev + " 0 3600000"; strings.Join(tbl, "") != want {
		t.Fatalf("TABLE %q, want %q (dm's form: the args as given)", tbl, want)
	}
}
