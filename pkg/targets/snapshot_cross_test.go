package targets

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"
)

// crossDeadline bounds TestSnapshotCrossWriters' load: far more than its
// few hundred small writes take even under -race on a loaded machine, so
// that passing it means a hang, not slowness.
const crossDeadline = 2 * time.Minute

// The origin and its snapshot as two tables (the oracle's snapshot-cross
// cases), written at once over the same chunks: origin writes copy chunks
// out to the snapshot (the origin's side taking the snapshot's ranges),
// snapshot writes span several chunks (holding each new stretch's range
// until the one commit), snapshot reads fall through to the origin. None
// may wait for another in a cycle: the load must finish, and the snapshot
// must read as the origin did, with its own writes on top.
func TestSnapshotCrossWriters(t *testing.T) {
	for _, chunk := range []string{"8", "32"} {
		t.Run("chunk="+chunk, func(t *testing.T) {
			const size = 1 << 20
			orig, o, s := originAndSnap(t, size, 5, 8*size, "P", chunk)
			before := readFile(t, orig)
			// Snapshot writers own alternate 64 KiB slots, origin writers
			// and readers go anywhere: every chunk a snapshot write takes
			// is one the origin's copy-out also wants.
			const slot, writers = 64 << 10, 2
			want := bytes.Clone(before)
			owner := func(off int64) int { return int(off/slot) % (writers + 1) }
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for g := range writers + 2 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 18))
					for range 150 {
						if err := crossOp(rng, g, writers, slot, size, o, s, want, owner); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			waitOrDump(t, &wg, crossDeadline)
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			got := s.mustRead(0, size)
			for off := int64(0); off < size; off += slot {
				if !bytes.Equal(got[off:off+slot], want[off:off+slot]) {
					t.Fatalf("snapshot slot at %d (owner %d) differs at byte %d", off, owner(off),
						off+int64(firstDiff(got[off:off+slot], want[off:off+slot])))
				}
			}
		})
	}
}

// crossOp is one operation of goroutine g: g < writers writes the snapshot
// over several chunks of its own slots (and what lies between them is not
// written: the request is cut to each slot); the others write the origin
// or read the snapshot anywhere.
func crossOp(rng *rand.Rand, g, writers int, slot, size int64, o, s *snapTable, want []byte,
	owner func(int64) int) error {
	if g >= writers {
		n := int64(1+rng.IntN(64)) * 512
		off := rng.Int64N((size-n)/512+1) * 512
		if g == writers {
			p := make([]byte, n)
			pattern(p, off, byte(rng.Uint32()))
			return o.tg.WriteAt(o.t.Context(), p, off, 0)
		}
		_, err := s.read(off, n)
		return err
	}
	// A slot of g's, a request over up to all of it (two to eight chunks
	// of 4 KiB, not aligned), and sometimes the next slot of g's too.
	first := int64(g)
	k := rng.Int64N(size/slot/int64(writers+1)) * int64(writers+1)
	off := (first+k)*slot + rng.Int64N(slot/512)*512
	n := min((first+k+1)*slot-off, int64(1+rng.IntN(128))*512)
	if owner(off) != g || owner(off+n-1) != g {
		return fmt.Errorf("goroutine %d: slot arithmetic: %d+%d", g, off, n)
	}
	p := make([]byte, n)
	pattern(p, off, byte(rng.Uint32()))
	if err := s.tg.WriteAt(s.t.Context(), p, off, 0); err != nil {
		return err
	}
	copy(want[off:], p) // only g writes its slots
	return nil
}

// waitOrDump waits for wg at most d; past it the test binary dies with
// every goroutine's stack, which shows who waits for whom. It exits
// rather than fail the test or panic: either runs the tables' cleanup
// first, which a deadlocked lock holds back too (a destroy waits for the
// origin writes), and the test would hang there instead.
func waitOrDump(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 2)
		fmt.Fprint(os.Stderr, b.String())
		fmt.Fprintf(os.Stderr, "--- FAIL: %s: still running after %v: a deadlock? goroutines above\n", t.Name(), d)
		os.Exit(1)
	}
}
