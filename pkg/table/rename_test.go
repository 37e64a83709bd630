package table

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// After Rename, the device's errors name it by its new name.
func TestRenameNamesErrors(t *testing.T) {
	d := NewDevice("before", false, discardLog())
	defer d.Close()
	d.Rename("after")
	if d.Name() != "after" {
		t.Fatalf("Name = %q", d.Name())
	}
	err := d.Resume(context.Background(), false)
	if !errors.Is(err, ErrNoTable) || !strings.Contains(err.Error(), "after") || strings.Contains(err.Error(), "before") {
		t.Fatalf("resume without a table: %v; want it to name the device \"after\"", err)
	}
}
