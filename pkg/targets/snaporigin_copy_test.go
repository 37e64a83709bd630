package targets

import (
	"bytes"
	"sync"
	"testing"
)

// Origin writes in flight at once each copy their chunks out to COW
// chunks that lie end to end (metadata areas aside), so that each copy is
// one write and a later read of the snapshot one call per run: chunks
// taken one at a time alternate between the writers, and a 1 MiB origin
// write over 4 KiB chunks then costs hundreds of COW writes.
func TestOriginCopiesEndToEnd(t *testing.T) {
	const mib, writers, rounds = 1 << 20, 8, 4
	const size = writers * rounds * mib
	orig, o, s := originAndSnap(t, size, 3, 2*size, "P", "8")
	want := readFile(t, orig)
	for r := range rounds {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				off := int64(r*writers+w) * mib
				p := make([]byte, mib)
				pattern(p, off, 99)
				<-start
				o.mustWrite(p, off, 0)
			})
		}
		close(start)
		wg.Wait()
	}
	st := s.tg.(*snapshot).store.Load()
	for off := int64(0); off < size; off += mib {
		runs := 0
		for at := off; at < off+mib; runs++ {
			r := st.nextRun(at, off+mib-at)
			if !r.mapped {
				t.Fatalf("chunk %d not copied out", r.chunk)
			}
			at += r.size
		}
		// 256 data chunks lie in at most two metadata areas' stretches.
		if runs > 2 {
			t.Errorf("the copy of the MiB at %d lies in %d stretches of the COW device, want at most 2", off, runs)
		}
	}
	if got := s.mustRead(0, size); !bytes.Equal(got, want) {
		t.Fatalf("snapshot differs from the origin before the writes at byte %d", firstDiff(got, want))
	}
}

// An origin write over chunks that earlier snapshot writes left mapped
// every few chunks copies the rest with one read of the origin (the mapped
// chunks between read and dropped) and one gathered write: chunk by chunk
// it costs a read and a write per stretch between mapped chunks.
func TestOriginCopyOverGaps(t *testing.T) {
	const chunk, mib = 4096, 1 << 20
	orig, o, s := originAndSnap(t, 4*mib, 4, 8*mib, "P", "8")
	want := readFile(t, orig)
	p := make([]byte, mib)
	pattern(p, 0, 55)
	for off := int64(0); off < mib; off += 3 * chunk { // 86 of 256 chunks mapped
		s.mustWrite(p[:chunk], off, 0)
		copy(want[off:off+chunk], p[:chunk])
	}
	calls := ioCalls(t)
	o.mustWrite(p, 0, 0) // 170 chunks copied out, in 85 stretches
	expectCalls(t, "origin write copying 170 chunks between mapped ones", calls, 1, 4)
	if got := s.mustRead(0, 4*mib); !bytes.Equal(got, want) {
		t.Fatalf("snapshot differs at byte %d", firstDiff(got, want))
	}
}

// An origin write copies to a snapshot only the chunks it changes before
// the snapshot's end, as dm's __origin_write (which skips a snapshot when
// the write starts past its table's size): a chunk the end cuts is copied
// whole when the write changes a sector of it before the end, never for a
// write past the end. Here the snapshot is 4.5 chunks of a 16-chunk origin.
func TestOriginWritePastSnapshotEnd(t *testing.T) {
	const chunk = 4096
	const end = 4*chunk + chunk/2
	orig := fillPattern(t, 16*chunk, 4)
	want := readFile(t, orig)[:end]
	o := newSnapTable(t, "snapshot-origin", 16*chunk/512, orig)
	s := newSnapTable(t, "snapshot", end/512, orig, tempFile(t, 64*chunk), "P", "8").resume()
	o.mustWrite(make([]byte, 4*chunk), 8*chunk, 0) // whole chunks past the end
	o.mustWrite([]byte{1}, end, 0)                 // the cut chunk, past the end
	if got := s.tg.Status(StatusInfo); got != "16/512 16" {
		t.Errorf("after origin writes past the end: status %q, want 16/512 16 (nothing copied)", got)
	}
	o.mustWrite(make([]byte, 2*chunk), end-512, 0) // the end's last sector and on
	if got := s.tg.Status(StatusInfo); got != "24/512 16" {
		t.Errorf("after an origin write across the end: status %q, want 24/512 16 (the cut chunk copied)", got)
	}
	if got := s.mustRead(0, end); !bytes.Equal(got, want) {
		t.Fatalf("snapshot differs from the origin before the writes at byte %d", firstDiff(got, want))
	}
}
