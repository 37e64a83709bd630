package targets

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// A corrupted write reaches the device with byte N of the request set,
// and the caller's buffer is left as it was.
func TestFlakeyCorruptWrite(t *testing.T) {
	r := newFlakeyRig(t, "0 5 5 corrupt_bio_byte 3 w 171 0")
	buf := flakeyFill(512, 0x11)
	if err := r.f.WriteAt(fctx, buf, 512, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, flakeyFill(512, 0x11)) {
		t.Fatal("the caller's write buffer was changed")
	}
	want := flakeyFill(512, 0x11)
	want[2] = 171
	if got := r.backing(t, 512, 512); !bytes.Equal(got, want) {
		t.Errorf("device holds % x..., want byte 3 of the request set to 171", got[:8])
	}
	// A request shorter than N is written as it is, and not counted.
	if err := r.f.WriteAt(fctx, flakeyFill(2, 0x22), 0, 0); err != nil {
		t.Fatal(err)
	}
	if got := r.backing(t, 0, 2); !bytes.Equal(got, flakeyFill(2, 0x22)) {
		t.Errorf("a 2-byte write was corrupted: % x", got)
	}
	// Reads are not corrupted by direction w.
	got := make([]byte, 512)
	if err := r.f.ReadAt(fctx, got, 512); err != nil || !bytes.Equal(got, want) {
		t.Errorf("read under corrupt w: %v", err)
	}
	r.wantFaults(t, 0, 0, 0, 1)
}

// corrupt_bio_byte's flags: a request matches when it has all of them,
// the write op bit (1) and REQ_FUA (131072) being the ones gdm's requests
// carry.
func TestFlakeyCorruptFlags(t *testing.T) {
	cases := []struct {
		flags   string
		wflags  WriteFlags
		corrupt bool
	}{
		{"0", 0, true}, {"0", FUA, true},
		{"1", 0, true}, // REQ_OP_WRITE's bit
		{"131072", 0, false}, {"131072", FUA, true}, {"131073", FUA, true},
		{"4096", FUA, false}, // REQ_META: never set by gdm
	}
	for _, c := range cases {
		r := newFlakeyRig(t, "0 5 5 corrupt_bio_byte 1 w 0 "+c.flags)
		if err := r.f.WriteAt(fctx, flakeyFill(512, 9), 0, c.wflags); err != nil {
			t.Fatal(err)
		}
		if got := r.backing(t, 0, 1)[0] == 0; got != c.corrupt {
			t.Errorf("flags %s, write flags %d: corrupted %v, want %v", c.flags, c.wflags, got, c.corrupt)
		}
	}
}

// A corrupted read returns byte N of the request changed; the device is
// not touched. SpliceTo leaves such a read to ReadAt, and splices reads
// that cannot be corrupted (a read never has flag 1 set).
func TestFlakeyCorruptRead(t *testing.T) {
	r := newFlakeyRig(t, "0 5 5 corrupt_bio_byte 2 r 7 0")
	got := make([]byte, 512)
	if err := r.f.ReadAt(fctx, got, 1024); err != nil {
		t.Fatal(err)
	}
	want := flakeyFill(512, rigFill)
	want[1] = 7
	if !bytes.Equal(got, want) {
		t.Errorf("read % x..., want byte 2 set to 7", got[:4])
	}
	if !bytes.Equal(r.backing(t, 1024, 512), flakeyFill(512, rigFill)) {
		t.Error("a read corruption reached the device")
	}
	if err := r.f.SpliceTo(fctx, -1, 0, 512); err != ErrPipeFull {
		t.Errorf("splice of a read to corrupt: %v, want ErrPipeFull", err)
	}
	r.wantFaults(t, 0, 0, 0, 1)

	r = newFlakeyRig(t, "0 5 5 corrupt_bio_byte 2 r 7 1")
	if err := r.f.ReadAt(fctx, got, 0); err != nil || !bytes.Equal(got, flakeyFill(512, rigFill)) {
		t.Errorf("a read matched flags 1: %v % x", err, got[:4])
	}
	if spliced := flakeySplice(t, r.f, 0, 512); !bytes.Equal(spliced, flakeyFill(512, rigFill)) {
		t.Error("splice under a corruption reads never match gave other data")
	}
	r.wantFaults(t, 0, 0, 0, 0)
}

// flakeySplice splices [off, off+n) of f through a pipe and returns it.
func flakeySplice(t *testing.T, f *flakey, off, n int64) []byte {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if err := f.SpliceTo(fctx, fds[1], off, n); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, n)
	if m, err := unix.Read(fds[0], out); err != nil || int64(m) != n {
		t.Fatalf("read %d of %d from the pipe: %v", m, n, err)
	}
	return out
}

// random_*_corrupt draws as dm does: a 64-bit number modulo 10^9 below
// the probability corrupts, at a 32-bit draw modulo the length, with a
// random byte. The test replays the same draws from the same seed.
func TestFlakeyRandomCorrupt(t *testing.T) {
	r := newFlakeyRig(t, "0 5 4 random_read_corrupt 500000000 random_write_corrupt 1000000000")
	replay := rand.New(rand.NewPCG(1, 1))
	hits := uint64(0)
	for i := range 40 {
		got := make([]byte, 512)
		if err := r.f.ReadAt(fctx, got, 0); err != nil {
			t.Fatal(err)
		}
		want := flakeyFill(512, rigFill)
		if replay.Uint64()%1_000_000_000 < 500_000_000 {
			want[replay.Uint32()%512] = byte(replay.Uint32())
			hits++
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %d differs from the replayed draws", i)
		}
	}
	if hits == 0 || hits == 40 {
		t.Fatalf("%d of 40 reads at 50%% corrupted: the replay is not testing the probability", hits)
	}
	buf := flakeyFill(512, 3)
	if err := r.f.WriteAt(fctx, buf, 0, 0); err != nil {
		t.Fatal(err)
	}
	want := flakeyFill(512, 3)
	replay.Uint64()
	want[replay.Uint32()%512] = byte(replay.Uint32())
	if !bytes.Equal(r.backing(t, 0, 512), want) || !bytes.Equal(buf, flakeyFill(512, 3)) {
		t.Error("a write at 100% was not corrupted as drawn, or its buffer changed")
	}
	r.wantFaults(t, 0, 0, 0, hits+1)
}

// Many requests at once share the generator and the counters (run with
// -race).
func TestFlakeyConcurrentCorruption(t *testing.T) {
	r := newFlakeyRig(t, "0 5 2 random_write_corrupt 1000000000")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for range 20 {
				if err := r.f.WriteAt(fctx, flakeyFill(512, byte(g)), int64(g)*512, 0); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(<-errs); err != nil {
		t.Fatal(err)
	}
	r.wantFaults(t, 0, 0, 0, 160)
}
