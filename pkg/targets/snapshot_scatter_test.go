package targets

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// scatter writes each chunk of [0, n chunks) of s with one write, chunk 0
// first and the rest in a random order, as a 4 KiB random write job
// leaves a snapshot: consecutive chunks at random COW chunks. It returns
// the snapshot's view.
func scatter(t *testing.T, orig string, s *snapTable, n int, chunk int64) []byte {
	t.Helper()
	want := readFile(t, orig)
	order := []int{0}
	for _, c := range rand.New(rand.NewPCG(3, 4)).Perm(n) {
		if c != 0 {
			order = append(order, c)
		}
	}
	for _, c := range order {
		p := make([]byte, chunk)
		pattern(p, int64(c)*chunk, 61)
		s.mustWrite(p, int64(c)*chunk, 0)
		copy(want[int64(c)*chunk:], p)
	}
	return want
}

// A read over exceptions at scattered COW chunks returns the same bytes,
// whole and from inside chunks. Its 64 runs fill 64 consecutive COW
// chunks, in a random order: one preadv reads them all. A splice of them,
// five runs or all 64 (into a pipe with room), moves the same bytes.
func TestSnapshotScatteredRead(t *testing.T) {
	const chunk, n = 4096, 64
	orig, _, s := originAndSnap(t, n*chunk, 7, 4*n*chunk, "N", "8")
	want := scatter(t, orig, s, n, chunk)
	readCounted(t, "read of 64 scattered chunks", s, want, 1)
	if got := s.mustRead(chunk/2+512, 10*chunk); !bytes.Equal(got, want[chunk/2+512:][:10*chunk]) {
		t.Fatalf("read inside chunks differs at byte %d", firstDiff(got, want[chunk/2+512:][:10*chunk]))
	}
	spliceBack(t, s, 512, 4*chunk, want)
	spliceBack(t, s, 0, n*chunk, want)
}

// spliceBack splices [off, off+n) of s into a new pipe with room for it
// and checks that the pipe holds want's bytes there.
func spliceBack(t *testing.T, s *snapTable, off, n int64, want []byte) {
	t.Helper()
	r, w := pipe(t)
	if _, err := unix.FcntlInt(uintptr(w), unix.F_SETPIPE_SZ, int(n)+4096); err != nil {
		t.Fatal(err)
	}
	if err := s.tg.SpliceTo(t.Context(), w, off, n); err != nil {
		t.Fatalf("splice of [%d, +%d): %v", off, n, err)
	}
	got := make([]byte, n)
	for k := 0; k < len(got); {
		m, err := unix.Read(r, got[k:])
		if err != nil || m == 0 {
			t.Fatalf("read %d bytes of the pipe (%v), want %d", k, err, len(got))
		}
		k += m
	}
	if !bytes.Equal(got, want[off:][:n]) {
		t.Fatalf("spliced [%d, +%d) differs at byte %d", off, n, firstDiff(got, want[off:][:n]))
	}
}

// everyFourth writes chunks 0, 4, 8, ... of [0, n chunks) of s, one write
// each, and returns the snapshot's view.
func everyFourth(t *testing.T, orig string, s *snapTable, n int, chunk int64) []byte {
	t.Helper()
	want := readFile(t, orig)
	one := make([]byte, chunk)
	for c := int64(0); c < int64(n); c += 4 {
		pattern(one, c*chunk, 73)
		s.mustWrite(one, c*chunk, 0)
		copy(want[c*chunk:], one)
	}
	return want
}

// A rewrite over exceptions at scattered COW chunks lands in each, with
// two pwritevs (they fill consecutive COW chunks, but the write ends 512
// bytes short of the last one's end, a gap there on the COW device), and
// FUA syncs the COW device once: a read chunk by chunk and the COW file
// itself hold the new bytes.
func TestSnapshotScatteredRewrite(t *testing.T) {
	const chunk, n = 4096, 64
	orig, _, s := originAndSnap(t, n*chunk, 9, 4*n*chunk, "N", "8")
	want := scatter(t, orig, s, n, chunk)
	p := make([]byte, n*chunk-1024)
	pattern(p, 0, 62)
	snap := s.tg.(*snapshot)
	syncs, calls := snap.cow.Syncs(), ioCalls(t)
	s.mustWrite(p, 512, FUA)
	expectCalls(t, "rewrite of 64 scattered chunks", calls, 0, 2)
	if got := snap.cow.Syncs() - syncs; got != 1 {
		t.Errorf("FUA rewrite: %d COW syncs, want 1", got)
	}
	copy(want[512:], p)
	checkEachChunk(t, s, want, n, chunk)
}

// A first write over chunks that writes left mapped one in four makes
// the other 48 exceptions at the COW chunks after the 16 mapped ones, so
// the whole write is one pwritev; the bytes are in each chunk.
func TestSnapshotSprinkledWrite(t *testing.T) {
	const chunk, n = 4096, 64
	orig, _, s := originAndSnap(t, n*chunk, 13, 4*n*chunk, "N", "8")
	everyFourth(t, orig, s, n, chunk)
	p := make([]byte, n*chunk)
	pattern(p, 0, 63)
	calls := ioCalls(t)
	s.mustWrite(p, 0, 0)
	expectCalls(t, "write over 16 mapped chunks and 16 new runs", calls, 0, 1)
	checkEachChunk(t, s, p, n, chunk)
	readCounted(t, "read after it", s, p, 1)
}

// checkEachChunk checks that each chunk of s, read alone, and its
// exception in the COW file hold want's bytes.
func checkEachChunk(t *testing.T, s *snapTable, want []byte, n, chunk int64) {
	t.Helper()
	snap := s.tg.(*snapshot)
	cow := readFile(t, snap.cow.Path())
	for c := int64(0); c < n; c++ {
		w := want[c*chunk:][:chunk]
		if got := s.mustRead(c*chunk, chunk); !bytes.Equal(got, w) {
			t.Fatalf("chunk %d read alone differs at byte %d", c, firstDiff(got, w))
		}
		nw, ok := snap.store.Load().lookup(uint64(c))
		if !ok {
			t.Fatalf("chunk %d has no exception", c)
		}
		if got := cow[int64(nw)*chunk:][:chunk]; !bytes.Equal(got, w) {
			t.Fatalf("chunk %d in the COW file differs at byte %d", c, firstDiff(got, w))
		}
	}
}

// A read of chunks whose COW data is gone (the COW file shrank under gdm)
// fails with ErrShortIO; it does not hand back stale or zero bytes.
func TestSnapshotCowShrank(t *testing.T) {
	const chunk, n = 4096, 16
	orig, _, s := originAndSnap(t, n*chunk, 8, 4*n*chunk, "N", "8")
	scatter(t, orig, s, n, chunk)
	snap := s.tg.(*snapshot)
	first, _ := snap.store.Load().lookup(0)
	if err := os.Truncate(snap.cow.Path(), int64(first+1)*chunk); err != nil {
		t.Fatal(err)
	}
	if _, err := s.read(0, n*chunk); !errors.Is(err, ErrShortIO) {
		t.Errorf("read of chunks past the COW's new end: %v, want ErrShortIO", err)
	}
}

// A read over chunks that writes left mapped one in four alternates
// between the COW device and the origin, 32 runs, and returns the same
// bytes: one pread for each of the 16 origin runs, one preadv for the 16
// mapped chunks (consecutive COW chunks).
func TestSnapshotMixedRead(t *testing.T) {
	const chunk, n = 4096, 64
	orig, _, s := originAndSnap(t, n*chunk, 12, 4*n*chunk, "N", "8")
	want := everyFourth(t, orig, s, n, chunk)
	readCounted(t, "read over 32 mixed runs", s, want, 17)
}

// readCounted reads s whole, which must give want, with at most calls
// reads.
func readCounted(t *testing.T, what string, s *snapTable, want []byte, calls int) {
	t.Helper()
	before := ioCalls(t)
	if got := s.mustRead(0, int64(len(want))); !bytes.Equal(got, want) {
		t.Fatalf("%s differs at byte %d", what, firstDiff(got, want))
	}
	expectCalls(t, what, before, calls, 0)
}
