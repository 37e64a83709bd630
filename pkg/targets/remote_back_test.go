package targets

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// TestRemoteStripedLegBack: a striped leg whose host went down shows D,
// and once the host is back shows A again by itself, no I/O having come
// its way (the other leg's I/O does not bring it back: it is not its
// connection). Down again, its I/O fails with EIO within the URI's
// timeout, and it stays D after that, as dm's does after an error.
func TestRemoteStripedLegBack(t *testing.T) {
	a, b := nbdtest.NewMem(64<<10), nbdtest.NewMem(64<<10)
	sa := nbdtest.Start(t, nbdtest.Exports{"a": a})
	sb := nbdtest.Start(t, nbdtest.Exports{"b": b})
	set := NewDevSet(false)
	defer set.Close()
	tg, err := newStriped([]string{"2", "8", sa.URI("a"), "0", sb.URI("b") + "&timeout=500ms", "0"}, 2*64, set)
	if err != nil {
		t.Fatal(err)
	}
	status := func(want string) func() bool {
		return func() bool { return strings.HasSuffix(tg.Status(StatusInfo), " 1 "+want) }
	}
	sb.Stop()
	testkit.WaitFor(t, 10*time.Second, "the second leg D", status("AD"))
	mustOK(t, tg.ReadAt(context.Background(), make([]byte, 512), 0)) // the other leg
	sb.Start()
	testkit.WaitFor(t, 10*time.Second, "the second leg A again, with no I/O", status("AA"))
	sb.Stop()
	testkit.WaitFor(t, 10*time.Second, "the second leg D again", status("AD"))
	start := time.Now()
	if err := tg.ReadAt(context.Background(), make([]byte, 512), 4096); !errors.Is(err, syscall.EIO) || time.Since(start) > 5*time.Second {
		t.Fatalf("read of the down leg: %v after %v", err, time.Since(start))
	}
	sb.Start()
	testkit.WaitFor(t, 10*time.Second, "the second leg read again", func() bool {
		return tg.ReadAt(context.Background(), make([]byte, 512), 4096) == nil
	})
	if !status("AD")() {
		t.Fatalf("after an I/O error, status %q", tg.Status(StatusInfo))
	}
}
