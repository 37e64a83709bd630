package daemon

import (
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// A connected client keeps the size it negotiated: after the table shrinks,
// its requests past the new end get an error reply and the connection
// lives; new connections see the new size.
func TestResizeKeepsNegotiatedSize(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 linear "+a+" 0")
	old := dialNBD(t, td.addrs["nbd-unix"], "d")
	if old.size != 2048*512 {
		t.Fatalf("negotiated %d", old.size)
	}
	td.ok(t, "load", "d", "--table", "0 1024 linear "+a+" 0")
	td.ok(t, "resume", "d")
	if e, _, err := old.do(0, 1024*512, 512, nil); err != nil || e != 22 {
		t.Fatalf("read past the shrunk end: errno %d, %v; want EINVAL (22)", e, err)
	}
	// Writes and write-zeroes past the end are ENOSPC (the NBD spec's
	// answer for those two), trims EINVAL.
	if e, _, err := old.do(1, 1024*512, 512, make([]byte, 512)); err != nil || e != 28 {
		t.Fatalf("write past the shrunk end: errno %d, %v; want ENOSPC (28)", e, err)
	}
	if e, _, err := old.do(6, 1024*512, 512, nil); err != nil || e != 28 {
		t.Fatalf("write-zeroes past the shrunk end: errno %d, %v; want ENOSPC (28)", e, err)
	}
	if e, _, err := old.do(4, 1024*512, 512, nil); err != nil || e != 22 {
		t.Fatalf("trim past the shrunk end: errno %d, %v; want EINVAL (22)", e, err)
	}
	if e, _, err := old.do(0, 0, 512, nil); err != nil || e != 0 {
		t.Fatalf("read inside: errno %d, %v", e, err)
	}
	if fresh := dialNBD(t, td.addrs["nbd-unix"], "d"); fresh.size != 1024*512 {
		t.Fatalf("new connection sees %d bytes, want %d", fresh.size, 1024*512)
	}
	// Growing: the old client still sees its old size.
	td.ok(t, "load", "d", "--table", "0 2048 linear "+a+" 0")
	td.ok(t, "resume", "d", "--live")
	if e, _, _ := old.do(0, 2047*512, 512, nil); e != 0 {
		t.Fatalf("read at the end after growing back: errno %d", e)
	}
}
