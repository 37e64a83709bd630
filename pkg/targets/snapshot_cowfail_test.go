package targets

import (
	"bytes"
	"context"
	"syscall"
	"testing"

	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// A snapshot write into a chunk with no exception yet, whose data write to
// the COW device fails: as dm, a write that fills the chunk (dm writes it
// straight in as the chunk's copy) invalidates the snapshot; a write to
// part of it (its old data copied first) only fails, and the snapshot
// still reads the chunk's old data, from the exception dm commits all the
// same: a later origin write to the chunk copies nothing.
func TestSnapshotFailedNewChunkWrite(t *testing.T) {
	const chunk = 4096
	for _, c := range []struct {
		name        string
		off, n      int64
		failAt      int64 // the COW offset of the write's data: first data chunk is 2
		invalidated bool
	}{
		{"part of a chunk", 512, 512, 2*chunk + 512, false},
		{"a whole chunk", chunk, chunk, 2 * chunk, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			orig := fillPattern(t, 16*chunk, 9)
			m := nbdtest.NewMem(64 * chunk)
			srv := nbdtest.Start(t, nbdtest.Exports{"cow": m})
			o := newSnapTable(t, "snapshot-origin", 16*chunk/512, orig)
			s := newSnapTable(t, "snapshot", 16*chunk/512, orig, srv.URI("cow"), "P", "8").resume()
			old := s.mustRead(c.off, c.n)
			m.FailAt(c.failAt, syscall.EIO)
			if err := s.tg.WriteAt(context.Background(), bytes.Repeat([]byte{0xA5}, int(c.n)), c.off, 0); err == nil {
				t.Fatal("the write succeeded with its COW data write failing")
			}
			m.FailAt(-1, 0)
			status := s.tg.Status(StatusInfo)
			if got := status == "Invalid"; got != c.invalidated {
				t.Fatalf("status %q after the failed write, want invalidated %v", status, c.invalidated)
			}
			if c.invalidated {
				return
			}
			if !bytes.Equal(s.mustRead(c.off, c.n), old) {
				t.Fatal("the snapshot no longer reads the chunk's old data")
			}
			o.mustWrite([]byte{0x5A}, c.off, 0)
			if got := s.tg.Status(StatusInfo); got != "24/512 16" {
				t.Errorf("status %q after an origin write to the chunk, want 24/512 16: its exception committed, as dm", got)
			}
			if !bytes.Equal(s.mustRead(c.off, c.n), old) {
				t.Fatal("after an origin write, the snapshot no longer reads the chunk's old data")
			}
		})
	}
}
