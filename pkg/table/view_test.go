package table

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/targets"
)

// View holds the table for exactly the call: counted inside, given back
// after, on an error and on a panic too; an empty slot is ErrNoTable.
func TestViewPairsThePut(t *testing.T) {
	d := newLiveDevice(t, "0 8 zero")
	defer d.Close()
	tb := d.live.Load()
	errFn := errors.New("from fn")
	err := d.View(Live, func(v *Table) error {
		if v != tb || v.Holders() != 1 {
			t.Errorf("View gave %p with %d holders, want the live table held once", v, v.Holders())
		}
		return errFn
	})
	if !errors.Is(err, errFn) || tb.Holders() != 0 {
		t.Fatalf("View = %v, holders after %d; want fn's error and 0", err, tb.Holders())
	}
	func() {
		defer func() { _ = recover() }()
		_ = d.View(Live, func(*Table) error { panic("in fn") })
	}()
	if n := tb.Holders(); n != 0 {
		tb.holders.Add(-n) // or Close would wait for it forever
		t.Fatalf("holders %d after a panic in fn", n)
	}
	called := false
	if err := d.View(Inactive, func(*Table) error { called = true; return nil }); !errors.Is(err, ErrNoTable) || called {
		t.Fatalf("View of an empty slot = %v (fn called %v), want ErrNoTable", err, called)
	}
	// A suspended device is viewed without waiting.
	must(t, d.Suspend(context.Background(), true))
	must(t, d.View(Live, func(*Table) error { return nil }))
}

// Status in both forms, of either slot; TABLE is what `dmsetup table`
// prints, each target's canonical args.
func TestDeviceStatusForms(t *testing.T) {
	f := testkit.Sparse(t, t.TempDir(), "f", 1<<20)
	d := newLiveDevice(t, "0 16 linear "+f+" 08\n16 8 zero\n24 8 test-recorder r")
	defer d.Close()
	must(t, d.LoadText("0 8 error"))
	for _, c := range []struct {
		slot Slot
		typ  targets.StatusType
		want []string
	}{
		{Live, targets.StatusTable, []string{f + " 8", "", "r"}},
		{Live, targets.StatusInfo, []string{"", "", ""}},
		{Inactive, targets.StatusTable, []string{""}},
	} {
		got, err := d.Status(c.slot, c.typ)
		if err != nil || strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("Status(%s, %d) = %q, %v; want %q", c.slot, c.typ, got, err, c.want)
		}
	}
	must(t, d.Clear())
	if _, err := d.Status(Inactive, targets.StatusInfo); !errors.Is(err, ErrNoTable) {
		t.Fatalf("status of an empty slot: %v, want ErrNoTable", err)
	}
}

// A message goes to the target at its sector, dm's rule; one without
// messages, a sector outside the table and an empty message are refused.
func TestMessageRoutesBySector(t *testing.T) {
	ctx := context.Background()
	d := newLiveDevice(t, "0 8 zero\n8 8 test-recorder m\n16 8 test-recorder n")
	defer d.Close()
	takeEvents()
	for _, c := range []struct {
		sector uint64
		args   []string
		reply  string
		err    error
	}{
		{8, []string{"hello", "there"}, "m: hello there", nil},
		{15, []string{"x"}, "m: x", nil},
		{16, []string{"y"}, "n: y", nil},
		{0, []string{"x"}, "", targets.ErrNoMessages},
		{24, []string{"x"}, "", ErrBadMessage},
		{8, nil, "", ErrBadMessage},
	} {
		reply, err := d.Message(ctx, c.sector, c.args)
		if reply != c.reply || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("Message(%d, %q) = %q, %v; want %q, %v", c.sector, c.args, reply, err, c.reply, c.err)
		}
	}
	expectEvents(t, "messages", "m:message", "m:message", "n:message")
	d.Close()
	if _, err := d.Message(ctx, 8, []string{"x"}); !errors.Is(err, ErrNoTable) {
		t.Fatalf("message to a removed device: %v", err)
	}
}
