package table

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

// cryptDisk makes a sparse 1 MiB disk and returns its path, a 256-bit
// key, and a crypt target's args over the disk with opts appended.
func cryptDisk(t *testing.T) (img, key string, crypt func(opts string) string) {
	t.Helper()
	img = filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(img, nil, 0o600); err != nil || os.Truncate(img, 1<<20) != nil {
		t.Fatal("making the disk:", err)
	}
	key = strings.Repeat("ab", 32)
	return img, key, func(opts string) string { return "crypt aes-xts-plain64 " + key + " 0 " + img + " 0" + opts }
}
