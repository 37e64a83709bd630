package targets

import (
	"bytes"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// snapModel is an origin and two snapshots of it (4 KiB and 16 KiB chunks,
// P and PO) over files, with what each should read.
type snapModel struct {
	t          *testing.T
	orig       string
	cows       [2]string
	tables     [3]*snapTable // origin, snapshot A, snapshot B
	want       [3][]byte
	size       int64
	chunkSizes [2]string
}

func newSnapModel(t *testing.T, size int64) *snapModel {
	m := &snapModel{t: t, size: size, chunkSizes: [2]string{"8", "32"}}
	m.orig = fillPattern(t, size, 7)
	m.cows = [2]string{tempFile(t, 4*size), tempFile(t, 4*size)}
	for i := range m.want {
		m.want[i] = readFile(t, m.orig)
	}
	m.open()
	return m
}

// open builds the three tables over the files and resumes the snapshots.
func (m *snapModel) open() {
	sectors := uint64(m.size / 512)
	m.tables[0] = newSnapTable(m.t, "snapshot-origin", sectors, m.orig)
	m.tables[1] = newSnapTable(m.t, "snapshot", sectors, m.orig, m.cows[0], "P", m.chunkSizes[0]).resume()
	m.tables[2] = newSnapTable(m.t, "snapshot", sectors, m.orig, m.cows[1], "PO", m.chunkSizes[1]).resume()
}

// reopen destroys the tables and builds them again from the same files.
func (m *snapModel) reopen() {
	for _, tb := range m.tables {
		tb.destroy()
	}
	m.open()
}

// crash copies the files as a killed process leaves them (the page cache
// holds every write that returned) and opens the copies instead.
func (m *snapModel) crash() {
	cp := func(p string) string {
		n := tempFile(m.t, 0)
		if err := os.WriteFile(n, readFile(m.t, p), 0o600); err != nil {
			m.t.Fatal(err)
		}
		return n
	}
	m.orig, m.cows[0], m.cows[1] = cp(m.orig), cp(m.cows[0]), cp(m.cows[1])
	m.open()
}

// verify reads all three devices whole and compares them to the model.
func (m *snapModel) verify(when string) {
	for i, tb := range m.tables {
		if got := tb.mustRead(0, m.size); !bytes.Equal(got, m.want[i]) {
			m.t.Fatalf("%s: device %d differs from the model at byte %d", when, i, firstDiff(got, m.want[i]))
		}
	}
}

// step does one random read or write of 512 B to 1 MiB on one device.
func (m *snapModel) step(rng *rand.Rand) {
	i := rng.IntN(3)
	n := int64(1+rng.IntN(2048)) * 512
	off := rng.Int64N((m.size-n)/512+1) * 512
	if rng.IntN(2) == 0 {
		if got := m.tables[i].mustRead(off, n); !bytes.Equal(got, m.want[i][off:off+n]) {
			m.t.Fatalf("read %d@%d of device %d differs at byte %d", n, off, i, firstDiff(got, m.want[i][off:off+n]))
		}
		return
	}
	p := make([]byte, n)
	pattern(p, off, byte(rng.Uint32()))
	var flags WriteFlags
	if rng.IntN(4) == 0 {
		flags = FUA
	}
	m.tables[i].mustWrite(p, off, flags)
	copy(m.want[i][off:], p)
}

// Random reads and writes on the origin and two snapshots agree with an
// in-memory model, through reopens and a simulated kill.
func TestSnapshotModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	m := newSnapModel(t, 4<<20)
	for i := range 160 {
		m.step(rng)
		switch i {
		case 49:
			m.reopen()
			m.verify("after reopen")
		case 109:
			m.crash()
			m.verify("after a kill")
		}
	}
	m.verify("at the end")
}

// Origin writes racing with snapshot reads of the same chunks never let a
// snapshot read see new data, nor does a snapshot write elsewhere disturb
// them.
func TestSnapshotConcurrentReadsSeeOldData(t *testing.T) {
	const size = 1 << 20
	orig := fillPattern(t, size, 9)
	old := readFile(t, orig)
	cow := tempFile(t, 4*size)
	o := newSnapTable(t, "snapshot-origin", size/512, orig)
	s := newSnapTable(t, "snapshot", size/512, orig, cow, "P", "16").resume()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range 60 {
				n := int64(1+rng.IntN(64)) * 512
				off := rng.Int64N((size/2-n)/512+1) * 512
				if w < 2 {
					o.mustWrite(bytes.Repeat([]byte{0xEE}, int(n)), off, 0)
					continue
				}
				p, err := s.read(off, n)
				if err != nil || !bytes.Equal(p, old[off:off+n]) {
					t.Errorf("snapshot read %d@%d saw new data (%v)", n, off, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// A snapshot read that goes to the origin holds the chunk: an origin write
// to it, starting meanwhile, waits for the read, which sees the old data.
func TestSnapshotReadHoldsBackOriginWrite(t *testing.T) {
	const chunk = 8192
	orig, o, s := originAndSnap(t, 16*chunk, 10, 1<<20, "P", "16")
	old := readFile(t, orig)
	snap := s.tg.(*snapshot)
	done := make(chan error, 1)
	snap.beforeOriginRead = func() {
		snap.beforeOriginRead = nil
		go func() { done <- o.tg.WriteAt(t.Context(), make([]byte, chunk), chunk, 0) }()
		testkit.WaitFor(t, 10*time.Second, "the origin write to wait or finish", func() bool {
			return snap.entry.locks.waiting() > 0 || len(done) > 0
		})
	}
	if got := s.mustRead(chunk, chunk); !bytes.Equal(got, old[chunk:2*chunk]) {
		t.Error("a snapshot read saw an origin write that started during it")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := s.mustRead(chunk, chunk); !bytes.Equal(got, old[chunk:2*chunk]) {
		t.Error("the snapshot lost the chunk's old data")
	}
}

// Four goroutines each own a quarter of the device and do random I/O on
// the origin and both snapshots in it: concurrent copies and commits
// (filling metadata areas together) keep every quarter equal to its model,
// and the stores reload equal after.
func TestSnapshotModelConcurrent(t *testing.T) {
	const size, parts = 4 << 20, 4
	m := newSnapModel(t, size)
	var wg sync.WaitGroup
	for g := range parts {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			base := int64(g) * size / parts
			for range 40 {
				i := rng.IntN(3)
				n := int64(1+rng.IntN(256)) * 512
				off := base + rng.Int64N((size/parts-n)/512+1)*512
				p := make([]byte, n)
				pattern(p, off, byte(rng.Uint32()))
				if err := m.tables[i].tg.WriteAt(t.Context(), p, off, 0); err != nil {
					t.Error(err)
					return
				}
				copy(m.want[i][off:], p) // each goroutine writes only its own quarter
			}
		})
	}
	wg.Wait()
	m.verify("after concurrent writes")
	m.reopen()
	m.verify("after reopen")
}
