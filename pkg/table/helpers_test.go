package table

import (
	"context"
	"io"
	"log/slog"
	"testing"
)

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// mustTable builds a table from text or fails the test.
func mustTable(t testing.TB, text string) *Table {
	t.Helper()
	tb, err := FromText(text, false)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// newLiveDevice makes a device with text as its live table.
func newLiveDevice(t testing.TB, text string) *Device {
	t.Helper()
	d := NewDevice("test", false, discardLog())
	if err := d.LoadText(text); err != nil {
		t.Fatal(err)
	}
	if err := d.Resume(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	return d
}
