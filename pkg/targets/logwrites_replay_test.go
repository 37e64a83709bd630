package targets

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gdm-project/gdm/internal/logwrites"
)

// replayTo replays the log file onto a fresh file of size bytes, up to
// the mark named end ("" for all), and returns the result.
func replayTo(t *testing.T, logPath string, size int64, end string) []byte {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := logwrites.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out := tempFile(t, size)
	dev, err := logwrites.OpenDevice(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if _, err := logwrites.Replay(r, dev, logwrites.Options{EndMark: end}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A random workload of writes (some FUA, some unaligned), discards and
// zeroes with flushes and marks: replaying the log up to a mark gives the
// device as it was when the mark was set, and replaying it all (after the
// destructor's end mark) gives the device's final bytes.
func TestLogWritesReplayReproduces(t *testing.T) {
	ctx := context.Background()
	const size = 256 * 1024
	lw, dev, log := newTestLogWrites(t, size, 16<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	snapshots := map[string][]byte{}
	for i := range 300 {
		off := rng.Int64N(size - 8192)
		switch op := rng.IntN(10); {
		case op < 6:
			p := make([]byte, 1+rng.IntN(8191), 8192)
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			if rng.IntN(2) == 0 { // mostly aligned, as file systems write
				off, p = off&^511, p[:max(512, len(p)&^511)]
			}
			flags := WriteFlags(0)
			if rng.IntN(5) == 0 {
				// dm logs a FUA write ahead of the plain writes that
				// completed before it and wait for a flush: were one of
				// them to the same sector, a replay would end with the
				// older data. File systems flush first; so does this.
				lw.FlushRequest(ctx)
				flags = FUA
			}
			if err := lw.WriteAt(ctx, p, off, flags); err != nil {
				t.Fatal(err)
			}
		case op == 6:
			lw.Trim(ctx, off, rng.Int64N(4096))
		case op == 7:
			lw.Zero(ctx, off, rng.Int64N(4096), ZeroFlags{NoHole: rng.IntN(2) == 0})
		case op == 8:
			lw.FlushRequest(ctx)
		default:
			lw.FlushRequest(ctx) // a mark after a flush: every write before is in the log
			name := string(rune('a'+i%26)) + string(rune('0'+i%10)) + string(rune('a'+i/26))
			lw.Message(ctx, []string{"mark", name})
			snapshots[name], _ = os.ReadFile(dev)
		}
	}
	if err := lw.Destroy(); err != nil {
		t.Fatal(err)
	}
	if len(snapshots) < 10 {
		t.Fatalf("only %d marks", len(snapshots))
	}
	for name, want := range snapshots {
		if got := replayTo(t, log, size, name); !bytes.Equal(got, want) {
			t.Fatalf("replay to mark %s differs from the device then", name)
		}
	}
	want, _ := os.ReadFile(dev)
	if got := replayTo(t, log, size, ""); !bytes.Equal(got, want) {
		t.Fatal("replaying the whole log differs from the device")
	}
}

// Writes, flushes and marks from many goroutines at once (each writing
// its own region, so that the final bytes do not depend on the order):
// the log stays well formed and replays to the device's final bytes.
func TestLogWritesConcurrent(t *testing.T) {
	ctx := context.Background()
	const size, workers, perWorker = 256 * 1024, 8, 50
	lw, dev, log := newTestLogWrites(t, size, 16<<20)
	done := make(chan error, workers)
	for w := range workers {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			region := int64(w) * size / workers
			var err error
			for i := 0; i < perWorker && err == nil; i++ {
				p := bytes.Repeat([]byte{byte(w*perWorker + i)}, 512*(1+rng.IntN(8)))
				off := region + rng.Int64N(size/workers-int64(len(p)))&^511
				switch rng.IntN(6) {
				case 0:
					err = lw.FlushRequest(ctx)
				case 1:
					_, err = lw.Message(ctx, []string{"mark", "m"})
				case 2: // flush first, as in TestLogWritesReplayReproduces
					if err = lw.FlushRequest(ctx); err == nil {
						err = lw.WriteAt(ctx, p, off, FUA)
					}
				default:
					err = lw.WriteAt(ctx, p, off, 0)
				}
			}
			done <- err
		}()
	}
	for range workers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := lw.Destroy(); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(dev)
	if got := replayTo(t, log, size, ""); !bytes.Equal(got, want) {
		t.Fatal("replaying the log of concurrent writers differs from the device")
	}
}
