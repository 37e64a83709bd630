package e2e

import (
	"testing"
	"time"
)

// TestOracleDMHang makes the kernel's dm hang on a case's first I/O (the
// guest suspends dm's device just before it, so the read waits in D state
// for good) and checks what runOracle promises for such a hang: the
// guest's watch names the case, the host stops that guest, and a fresh
// guest runs the case again and compares it in full.
func TestOracleDMHang(t *testing.T) {
	reports, hung := runOracle(t, oracleArgs{seed: 1, generated: 1, only: "^linear-whole$",
		hangDM: true, watch: 20 * time.Second})
	if hung != "linear-whole" {
		t.Fatalf("runOracle saw dm hang in %q, want linear-whole", hung)
	}
	if len(reports) != 1 || reports[0].Case != "linear-whole" {
		t.Fatalf("reports after the re-run: %+v, want linear-whole's alone", reports)
	}
	if r := reports[0]; len(r.Diffs) > 0 || r.Ops == 0 {
		t.Errorf("linear-whole in the fresh guest: %s (%d ops)", r.Text, r.Ops)
	}
}
