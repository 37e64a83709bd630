package targets

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// Why a snapshot never splices chunks still on its origin (SpliceTo), and
// why holding back origin writes until the pipe has been spliced into the
// socket would not make it safe: the socket's queue still refers to the
// origin's page-cache pages, not to copies of them, until the peer reads
// them, so a write to the origin made after the splice returned (after
// its copy-out to the snapshot) shows in what the peer reads. The data
// stays the file's until the client has read it, which the server cannot
// see. Checked over a UNIX socket pair (loopback TCP behaves the same).
// Should a kernel ever copy here, this fails, and splicing origin chunks
// under a hold could be reconsidered.
func TestSplicedPagesFollowWritesUntilRead(t *testing.T) {
	const n = 64 << 10
	devs := NewDevSet(false)
	t.Cleanup(func() { devs.Close() })
	d, err := devs.Open(fillPattern(t, n, 1))
	if err != nil {
		t.Fatal(err)
	}
	old := make([]byte, n)
	if err := d.ReadAt(old, 0); err != nil {
		t.Fatal(err)
	}
	r, w := pipe(t)
	if _, err := unix.FcntlInt(uintptr(w), unix.F_SETPIPE_SZ, n); err != nil {
		t.Fatal(err)
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(sp[0]); unix.Close(sp[1]) })
	if err := d.SpliceTo(w, 0, n); err != nil {
		t.Fatal(err)
	}
	for left := n; left > 0; {
		m, err := unix.Splice(r, nil, sp[0], nil, left, 0)
		if err != nil {
			t.Fatal(err)
		}
		left -= int(m)
	}
	nw := bytes.Repeat([]byte{0x55}, n)
	if err := d.WriteAt(nw, 0); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, n)
	for k := 0; k < n; {
		m, err := unix.Read(sp[1], got[k:])
		if err != nil {
			t.Fatal(err)
		}
		k += m
	}
	switch {
	case bytes.Equal(got, nw):
		// the premise holds: the socket carried the pages, not their bytes
	case bytes.Equal(got, old):
		t.Fatal("the peer read the bytes as spliced: this kernel copies into the socket, and origin chunks could be spliced under a hold")
	default:
		t.Fatalf("the peer read neither the old nor the new bytes (differs from new at %d)", firstDiff(got, nw))
	}
}
