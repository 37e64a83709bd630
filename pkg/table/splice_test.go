package table

import (
	"context"
	"errors"
	"testing"

	"github.com/gdm-project/gdm/pkg/targets"
)

// A spliced read that a later target of its range cannot splice
// (targets.ErrPipeFull: a full pipe, or a target that never splices) is
// not done: the server reads the whole range again with ReadAt, which
// counts it. The pieces spliced before the refusal must not be counted
// as well: each target's read counters then say one read, as the
// device's do, not two for the targets in front of the refusal.
func TestSpliceFallbackCountsOnce(t *testing.T) {
	d := newLiveDevice(t, "0 8 zero\n8 8 test-recorder splice-fallback")
	defer d.Close()
	ctx := context.Background()
	const n = 16 * targets.SectorSize
	if _, err := spliceRead(t, d, 0, n); !errors.Is(err, targets.ErrPipeFull) {
		t.Fatalf("spliced read over a target that never splices: %v, want ErrPipeFull", err)
	}
	if err := d.ReadAt(ctx, make([]byte, n), 0); err != nil { // the server's fallback
		t.Fatal(err)
	}
	if io := d.Stats().IO.Snapshot(); io.Ops[OpRead] != 1 || io.Bytes[OpRead] != n {
		t.Fatalf("device reads: %d ops, %d bytes; want 1, %d", io.Ops[OpRead], io.Bytes[OpRead], n)
	}
	must(t, d.View(Live, func(tb *Table) error {
		for i, s := range tb.SegmentSnapshot() {
			if s.Ops[OpRead] != 1 || s.Bytes[OpRead] != n/2 || s.Errors[OpRead] != 0 {
				t.Errorf("target %d reads: %d ops, %d bytes, %d errors; want 1, %d, 0",
					i, s.Ops[OpRead], s.Bytes[OpRead], s.Errors[OpRead], n/2)
			}
		}
		return nil
	}))
}
