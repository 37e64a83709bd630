package targets

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
)

// A reload hands the snapshot's state over with its exceptions, as dm's
// handover copies valid and snapshot_overflowed to the new table: an
// overflowed PO snapshot is still Overflow in the new table (its writes
// fail, even to the chunks it has), and a snapshot invalidated while its
// COW device refused the header's invalid mark (so the device still says
// valid) is still Invalid. Reloaded from the COW device alone, the new
// table said `40/40 16` and took writes again in both.
func TestSnapshotHandoverKeepsState(t *testing.T) {
	const chunk = 4096
	t.Run("overflow", func(t *testing.T) {
		orig, _, s := originAndSnap(t, 16*chunk, 14, 5*chunk, "PO", "8")
		cow := s.tg.(*snapshot).cow.Path()
		for c := range int64(3) {
			s.mustWrite([]byte{1}, c*chunk, 0)
		}
		if err := s.tg.WriteAt(t.Context(), []byte{1}, 3*chunk, 0); !errors.Is(err, ErrSnapOverflow) {
			t.Fatalf("write past the COW's end: %v, want ErrSnapOverflow", err)
		}
		s2 := newSnapTable(t, "snapshot", 16*chunk/512, orig, cow, "PO", "8").resume()
		if got := s2.tg.Status(StatusInfo); got != "Overflow" {
			t.Errorf("new table's status %q, want Overflow as dm's handover keeps it", got)
		}
		if err := s2.tg.WriteAt(t.Context(), []byte{2}, 0, 0); !errors.Is(err, ErrSnapOverflow) {
			t.Errorf("write to a chunk the overflowed snapshot has, after a reload: %v, want ErrSnapOverflow", err)
		}
		if got := s2.mustRead(0, 1); got[0] != 1 {
			t.Errorf("new table reads %d where the snapshot has 1", got[0])
		}
	})
	t.Run("invalid, header not written", func(t *testing.T) {
		orig := fillPattern(t, 16*chunk, 15)
		m := nbdtest.NewMem(5 * chunk)
		srv := nbdtest.Start(t, nbdtest.Exports{"cow": m})
		o := newSnapTable(t, "snapshot-origin", 16*chunk/512, orig)
		s := newSnapTable(t, "snapshot", 16*chunk/512, orig, srv.URI("cow"), "P", "8").resume()
		for c := range int64(3) {
			o.mustWrite([]byte{1}, c*chunk, 0)
		}
		m.FailAt(0, syscall.EIO) // the header: its invalid mark fails
		o.mustWrite([]byte{1}, 3*chunk, 0)
		m.FailAt(-1, 0)
		if got := s.tg.Status(StatusInfo); got != "Invalid" {
			t.Fatalf("status %q after an origin write with no room, want Invalid", got)
		}
		s2 := newSnapTable(t, "snapshot", 16*chunk/512, orig, srv.URI("cow"), "P", "8").resume()
		if got := s2.tg.Status(StatusInfo); got != "Invalid" {
			t.Errorf("new table's status %q, want Invalid as dm's handover keeps it", got)
		}
		if _, err := s2.read(0, 512); !errors.Is(err, ErrSnapInvalid) {
			t.Errorf("read of the new table: %v, want ErrSnapInvalid", err)
		}
	})
}

// A COW device that ends right after a metadata area's last data chunk
// (1-sector chunks: 32 pairs an area; a header, area 0 and its 32 chunks
// in 34): the exception that fills the area is committed with the next
// area zeroed first, and that area lies past the device's end. dm's
// zeroing write fails there (beyond the end of the device), its store goes
// invalid and the snapshot with it; the origin write goes on. gdm skipped
// the zeroing, stayed valid with `35/34 3` (more allocated than the device
// has), and left a COW whose next area dm cannot read: such a device is
// refused at load, as dm refuses it.
func TestSnapshotCowEndingAfterAFullArea(t *testing.T) {
	const chunk = 512
	orig, o, s := originAndSnap(t, 64*chunk, 16, 34*chunk, "P", "1")
	originFillsSnapshot(t, o, s, 31, chunk, "33/34 2", "1", orig)

	// A valid store whose last area is full with no room for another,
	// as gdm used to leave one: dm fails to read the next area.
	img := &cowImage{chunk: chunk, size: 34 * chunk}
	for c := range uint64(32) {
		img.add(c, make([]byte, chunk))
	}
	full := tempFile(t, img.size)
	if err := os.WriteFile(full, img.bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	devs := NewDevSet(false)
	defer devs.Close()
	if _, err := newSnapshot([]string{orig, full, "P", "1"}, 64, devs); !errors.Is(err, ErrDeviceTooSmall) {
		t.Errorf("a full last area with no room for the next: %v, want ErrDeviceTooSmall as dm refuses it", err)
	}
}

// A write over a chunk the snapshot has and a new chunk it fills whole,
// whose write to the first chunk's place on the COW device fails: dm cuts
// the write at chunks, so only the piece to the existing exception fails
// (EIO for the write); the whole new chunk is written in as its copy and
// committed, and the snapshot stays valid. gdm took any failure of the
// request's gathered COW write for the new chunk's and invalidated the
// snapshot.
func TestSnapshotFailedWriteToAnExistingChunk(t *testing.T) {
	const chunk = 4096
	orig := fillPattern(t, 16*chunk, 17)
	m := nbdtest.NewMem(64 * chunk)
	srv := nbdtest.Start(t, nbdtest.Exports{"cow": m})
	s := newSnapTable(t, "snapshot", 16*chunk/512, orig, srv.URI("cow"), "P", "8").resume()
	s.mustWrite([]byte{1}, 0, 0) // chunk 0 at COW chunk 2
	p := bytes.Repeat([]byte{0xC3}, 2*chunk)
	m.FailAt(2*chunk, syscall.EIO)
	err := s.tg.WriteAt(t.Context(), p, 0, 0)
	m.FailAt(-1, 0)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("write with its existing chunk's COW write failing: %v, want EIO", err)
	}
	if got := s.tg.Status(StatusInfo); got != "32/512 16" {
		t.Errorf("status %q, want 32/512 16: valid, the new chunk committed, as dm", got)
	}
	if got := s.mustRead(chunk, chunk); !bytes.Equal(got, p[chunk:]) {
		t.Error("the new chunk the write filled does not read its data")
	}
}

// A merge stopped by a failed metadata write (its commit of the first
// step) says Merge failed; a suspend and resume start it again, as dm's
// snapshot_merge_resume does whatever merge_failed says, and it finishes
// with the origin equal to the snapshot's view, the status still Merge
// failed (dm never clears it for the table). gdm never merged again once
// failed, and the failed commit had left the step's pairs cleared in the
// area it keeps in memory, so merging again would have copied the header
// chunk onto origin chunk 0 (dm's own code does that).
func TestSnapMergeGoesOnAfterFailedCommit(t *testing.T) {
	f := newMergeFixture(t, 7, 1)
	m := nbdtest.NewMem(int(2 * f.size))
	m.Set(0, readFile(t, f.cow))
	srv := nbdtest.Start(t, nbdtest.Exports{"cow": m})
	tb, mt := f.merge(f.orig, srv.URI("cow"), nil)
	mt.inStep = sync.OnceFunc(func() {
		st := mt.s.store.Load()
		m.FailAt(int64(st.lay.areaChunk(st.areaIdx.Load()))*st.lay.chunk, syscall.EIO) // the current area
	})
	tb.resume()
	<-mt.done
	m.FailAt(-1, 0)
	if got := mt.Status(StatusInfo); got != "Merge failed" {
		t.Fatalf("status %q after a failed commit, want Merge failed", got)
	}
	mt.PreSuspend(t.Context())
	mt.Resume(t.Context())
	<-mt.done
	if left := mt.s.store.Load().remaining(); left != 0 {
		t.Fatalf("%d exceptions left after a resume: the merge did not go on", left)
	}
	if got := readFile(t, f.orig); !bytes.Equal(got, f.view) {
		t.Fatalf("origin differs from the snapshot's view at byte %d", firstDiff(got, f.view))
	}
	if got := mt.Status(StatusInfo); got != "Merge failed" {
		t.Errorf("status %q after the merge went on, want Merge failed as dm keeps it", got)
	}
}
