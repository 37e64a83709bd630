package targets

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// dm-stripe's end_io counts an error against every stripe on the device
// the failed bio went to, so two legs on one device turn D together; and
// it does not count EOPNOTSUPP (a discard a leg cannot do).
func TestStripedStatusCountsErrorsPerDevice(t *testing.T) {
	shared, other := tempFile(t, 1<<20), tempFile(t, 1<<20)
	s := NewDevSet(false)
	defer s.Close()
	// Legs 0 and 2 on one file (at sectors 0 and 1024), leg 1 on another.
	args, err := checkStriped([]string{"3", "8", shared, "0", other, "0", shared, "1024"}, 3*512)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := newStriped(args, 3*512, s)
	if err != nil {
		t.Fatal(err)
	}
	st := tg.(*striped)
	st.count(1, fmt.Errorf("a leg that cannot discard: %w", syscall.EOPNOTSUPP))
	if got := tg.Status(StatusInfo); !strings.HasSuffix(got, " 1 AAA") {
		t.Fatalf("status after EOPNOTSUPP %q, want ...1 AAA (dm does not count it)", got)
	}
	// Chunk 2 is leg 2's first, at sector 1024 of the shared file: cut the
	// file before it, and a read of that chunk fails on leg 2.
	if err := os.Truncate(shared, 1024*512); err != nil {
		t.Fatal(err)
	}
	if err := tg.ReadAt(context.Background(), make([]byte, 4096), 2*4096); err == nil {
		t.Fatal("a read past the truncated file succeeded")
	}
	if got := tg.Status(StatusInfo); !strings.HasSuffix(got, " 1 DAD") {
		t.Fatalf("status after an error on the shared file %q, want ...1 DAD as dm", got)
	}
}
