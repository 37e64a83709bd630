package targets

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flakeyRig is a flakey target over a file whose bytes the test reads
// back, with a clock the test moves.
type flakeyRig struct {
	f    *flakey
	path string
	at   atomic.Int64 // nanoseconds since the target's start
}

const (
	rigDevOff  = 8 * SectorSize // the line's <offset>
	rigSectors = 64
	rigFill    = 0x5a // what the backing file holds at first
)

// newFlakeyRig builds `flakey <file> 8 <rest>` over a file filled with
// rigFill, its clock at 0 and its random numbers seeded with 1.
func newFlakeyRig(t *testing.T, rest string) *flakeyRig {
	t.Helper()
	r := &flakeyRig{path: tempFile(t, rigDevOff+rigSectors*SectorSize)}
	if err := os.WriteFile(r.path, bytes.Repeat([]byte{rigFill}, rigDevOff+rigSectors*SectorSize), 0o600); err != nil {
		t.Fatal(err)
	}
	args, err := checkFlakey(append([]string{r.path, "8"}, strings.Fields(rest)...), rigSectors)
	if err != nil {
		t.Fatal(err)
	}
	devs := NewDevSet(false)
	t.Cleanup(func() { devs.Close() })
	tg, err := newFlakey(args, rigSectors, devs)
	if err != nil {
		t.Fatal(err)
	}
	r.f = tg.(*flakey)
	epoch := time.Unix(1_000_000, 0)
	r.f.start = epoch
	r.f.now = func() time.Time { return epoch.Add(time.Duration(r.at.Load())) }
	r.f.rng = rand.New(rand.NewPCG(1, 1))
	return r
}

func (r *flakeyRig) setClock(d time.Duration) { r.at.Store(int64(d)) }

// backing is the file's bytes of the target's range [off, off+n).
func (r *flakeyRig) backing(t *testing.T, off, n int64) []byte {
	t.Helper()
	b, err := os.ReadFile(r.path)
	if err != nil {
		t.Fatal(err)
	}
	return b[rigDevOff+off : rigDevOff+off+n]
}

func (r *flakeyRig) faults() [NumFaultKinds]uint64 {
	var out [NumFaultKinds]uint64
	for k := range out {
		out[k] = r.f.faults.Requests[k].Load()
	}
	return out
}

func (r *flakeyRig) wantFaults(t *testing.T, readErr, writeErr, dropped, corrupted uint64) {
	t.Helper()
	got := r.faults()
	want := [NumFaultKinds]uint64{readErr, writeErr, dropped, corrupted, 0}
	if got != want {
		t.Errorf("faults %v, want %v (read_error, write_error, write_dropped, corrupted, delayed)", got, want)
	}
}

var fctx = context.Background() // flakey ignores it

func flakeyFill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func flakeyEIO(err error) bool { return errors.Is(err, syscall.EIO) }

// TestFlakeyIntervals checks dm's rule at the boundaries: whole seconds
// since New, modulo up+down, at least up is down.
func TestFlakeyIntervals(t *testing.T) {
	cases := []struct {
		upDown string
		at     time.Duration
		down   bool
	}{
		{"2 3", 0, false}, {"2 3", 2*time.Second - 1, false},
		{"2 3", 2 * time.Second, true}, {"2 3", 5*time.Second - 1, true},
		{"2 3", 5 * time.Second, false}, {"2 3", 7*time.Second - 1, false},
		{"2 3", 7 * time.Second, true}, {"2 3", 1000 * time.Second, false}, // 1000 % 5 = 0
		{"0 1", 0, true}, {"0 1", time.Hour, true},
		{"1 0", 0, false}, {"1 0", time.Hour, false},
		{"2 3", -time.Second, false}, // a clock before the start counts as 0
	}
	for _, c := range cases {
		r := newFlakeyRig(t, c.upDown)
		r.setClock(c.at)
		err := r.f.ReadAt(fctx, make([]byte, 512), 0)
		if down := err != nil; down != c.down {
			t.Errorf("up/down %s at %v: read error %v, want down=%v", c.upDown, c.at, err, c.down)
		}
		if err != nil && !flakeyEIO(err) {
			t.Errorf("up/down %s at %v: error %v is not EIO", c.upDown, c.at, err)
		}
	}
}

// With no feature, the down interval fails every request and changes
// nothing; the up interval is linear.
func TestFlakeyNoFeatures(t *testing.T) {
	for _, rest := range []string{"1 1", "1 1 0", "1 1 2 random_read_corrupt 0", "1 1 2 error_reads error_writes"} {
		r := newFlakeyRig(t, rest)
		r.setClock(time.Second)
		if err := r.f.ReadAt(fctx, make([]byte, 512), 0); !flakeyEIO(err) {
			t.Errorf("%s: down read: %v", rest, err)
		}
		if err := r.f.WriteAt(fctx, flakeyFill(512, 1), 0, FUA); !flakeyEIO(err) {
			t.Errorf("%s: down write: %v", rest, err)
		}
		if err := r.f.Zero(fctx, 512, 512, ZeroFlags{}); !flakeyEIO(err) {
			t.Errorf("%s: down zero: %v", rest, err)
		}
		if err := r.f.Trim(fctx, 1024, 512); !flakeyEIO(err) {
			t.Errorf("%s: down trim: %v", rest, err)
		}
		if err := r.f.SpliceTo(fctx, -1, 0, 512); !flakeyEIO(err) {
			t.Errorf("%s: down splice: %v", rest, err)
		}
		if !bytes.Equal(r.backing(t, 0, 2048), flakeyFill(2048, rigFill)) {
			t.Errorf("%s: the down interval changed the device", rest)
		}
		r.wantFaults(t, 2, 3, 0, 0)

		r.setClock(2 * time.Second)
		if err := r.f.WriteAt(fctx, flakeyFill(512, 1), 0, FUA); err != nil {
			t.Fatal(err)
		}
		if err := r.f.Zero(fctx, 512, 512, ZeroFlags{}); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 1024)
		if err := r.f.ReadAt(fctx, got, 0); err != nil || !bytes.Equal(got, append(flakeyFill(512, 1), flakeyFill(512, 0)...)) {
			t.Errorf("%s: up interval is not linear: %v", rest, err)
		}
		if spliced := flakeySplice(t, r.f, 0, 512); !bytes.Equal(spliced, flakeyFill(512, 1)) {
			t.Errorf("%s: up interval splice is not linear", rest)
		}
		r.wantFaults(t, 2, 3, 0, 0)
	}
}

func TestFlakeyDropWrites(t *testing.T) {
	r := newFlakeyRig(t, "0 5 1 drop_writes")
	buf := flakeyFill(1024, 7)
	if err := r.f.WriteAt(fctx, buf, 512, FUA); err != nil {
		t.Fatalf("dropped write answered %v", err)
	}
	if err := r.f.Zero(fctx, 0, 512, ZeroFlags{Fast: true}); err != nil {
		t.Fatalf("dropped zero answered %v", err)
	}
	if err := r.f.Trim(fctx, 2048, 512); err != nil {
		t.Fatalf("dropped trim answered %v", err)
	}
	if !bytes.Equal(r.backing(t, 0, 4096), flakeyFill(4096, rigFill)) {
		t.Error("a dropped request reached the device")
	}
	got := make([]byte, 512)
	if err := r.f.ReadAt(fctx, got, 512); err != nil || !bytes.Equal(got, flakeyFill(512, rigFill)) {
		t.Errorf("read under drop_writes: %v", err)
	}
	r.wantFaults(t, 0, 0, 3, 0)
}

func TestFlakeyErrorWrites(t *testing.T) {
	r := newFlakeyRig(t, "0 5 1 error_writes")
	if err := r.f.WriteAt(fctx, flakeyFill(512, 7), 0, 0); !flakeyEIO(err) {
		t.Errorf("write: %v", err)
	}
	if err := r.f.Zero(fctx, 0, 512, ZeroFlags{}); !flakeyEIO(err) {
		t.Errorf("zero: %v", err)
	}
	if err := r.f.Trim(fctx, 0, 512); !flakeyEIO(err) {
		t.Errorf("trim: %v", err)
	}
	if !bytes.Equal(r.backing(t, 0, 512), flakeyFill(512, rigFill)) {
		t.Error("a failed write reached the device")
	}
	got := make([]byte, 512)
	if err := r.f.ReadAt(fctx, got, 0); err != nil || !bytes.Equal(got, flakeyFill(512, rigFill)) {
		t.Errorf("read under error_writes: %v", err)
	}
	r.wantFaults(t, 0, 3, 0, 0)
}

func TestFlakeyErrorReads(t *testing.T) {
	r := newFlakeyRig(t, "0 5 1 error_reads")
	if err := r.f.ReadAt(fctx, make([]byte, 512), 0); !flakeyEIO(err) {
		t.Errorf("read: %v", err)
	}
	if err := r.f.SpliceTo(fctx, -1, 0, 512); !flakeyEIO(err) {
		t.Errorf("splice: %v", err)
	}
	if err := r.f.WriteAt(fctx, flakeyFill(512, 7), 0, 0); err != nil {
		t.Errorf("write under error_reads: %v", err)
	}
	if err := r.f.Zero(fctx, 512, 512, ZeroFlags{}); err != nil {
		t.Errorf("zero under error_reads: %v", err)
	}
	if !bytes.Equal(r.backing(t, 0, 1024), append(flakeyFill(512, 7), flakeyFill(512, 0)...)) {
		t.Error("writes under error_reads did not reach the device")
	}
	r.wantFaults(t, 2, 0, 0, 0)
}
