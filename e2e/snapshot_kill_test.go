package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// The snapshot kill test drives raw NBD itself (one request at a time per
// connection) so that it knows exactly which writes were acknowledged and
// which a FLUSH covered when the daemon dies.
const (
	skSectors   = 32768    // 16 MiB origin
	skCowBytes  = 24 << 20 // room for every origin chunk plus metadata
	skChunk     = 8        // sectors: 4 KiB chunks
	nbdCmdFlush = 3
)

// skConn is one NBD connection to an export, used synchronously.
type skConn struct {
	c      net.Conn
	cookie uint64
}

func dialSK(d *daemon, name string) (*skConn, error) {
	c, err := net.Dial("unix", d.nbdSock)
	if err != nil {
		return nil, err
	}
	if err := nbdAttach(c, name); err != nil {
		c.Close()
		return nil, err
	}
	return &skConn{c: c}, nil
}

// do sends one request and reads its simple reply (and n bytes of data
// for a read); a reply error is an error.
func (k *skConn) do(typ uint16, off uint64, payload []byte, n uint32) ([]byte, error) {
	k.cookie++
	k.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := k.c.Write(append(nbdRequest(typ, k.cookie, off, n), payload...)); err != nil {
		return nil, err
	}
	var rep [16]byte
	if _, err := io.ReadFull(k.c, rep[:]); err != nil {
		return nil, err
	}
	if e := binary.BigEndian.Uint32(rep[4:]); e != 0 || binary.BigEndian.Uint64(rep[8:]) != k.cookie {
		return nil, fmt.Errorf("nbd reply: error %d, cookie %d want %d", e, binary.BigEndian.Uint64(rep[8:]), k.cookie)
	}
	if typ != nbdCmdRead {
		return nil, nil
	}
	buf := make([]byte, n)
	_, err := io.ReadFull(k.c, buf)
	return buf, err
}

// skPattern is what sector sec holds after write id: zeros for id 0 (a
// fresh file), else the id and sector, then bytes derived from both, so
// that a sector names the write it came from and a torn or misplaced
// sector shows.
func skPattern(id uint32, sec int) []byte {
	b := make([]byte, 512)
	if id == 0 {
		return b
	}
	binary.BigEndian.PutUint32(b, id)
	binary.BigEndian.PutUint32(b[4:], uint32(sec))
	x := id*2654435761 ^ uint32(sec) | 1
	for i := 8; i < 512; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// skModel is what one device must read: cur is the write id of each
// sector after every acknowledged write; flushed is what an acknowledged
// FLUSH made durable; cand lists, for a sector written since the last
// FLUSH, the writes it may hold after a crash (its flushed id as well).
type skModel struct {
	name    string
	lo, hi  int    // the sectors this model's connection owns
	tag     uint32 // high bits of this model's write ids
	seq     uint32
	cur     []uint32
	flushed []uint32
	cand    map[int][]uint32
}

// skHalves models device name as two connections, each owning one half
// of it (chunk-aligned, so that they never share a chunk, yet share the
// COW store's commits). A snapshot's halves start as the origin's (from).
func skHalves(name string, tag uint32, from []*skModel) []*skModel {
	var ms []*skModel
	for h := range 2 {
		m := &skModel{name: name, lo: h * skSectors / 2, hi: (h + 1) * skSectors / 2, tag: (2*tag + uint32(h)) << 24,
			cur: make([]uint32, skSectors), cand: map[int][]uint32{}}
		if from != nil {
			copy(m.cur, from[h].cur)
		}
		m.flushed = append([]uint32(nil), m.cur...)
		ms = append(ms, m)
	}
	return ms
}

// op does one random read, write or flush on k and keeps m up to date.
// Writes are 512 B to 1 MiB at any sector of m's half, so they cross
// chunk boundaries.
func (m *skModel) op(k *skConn, rng *rand.Rand) error {
	n := 1 + rng.IntN(1<<rng.IntN(12))
	sec := m.lo + rng.IntN(m.hi-m.lo-n+1)
	switch r := rng.IntN(20); {
	case r < 3:
		return m.flush(k)
	case r < 11:
		m.seq++
		id := m.tag | m.seq
		buf := make([]byte, 0, n*512)
		for s := sec; s < sec+n; s++ {
			buf = append(buf, skPattern(id, s)...)
			m.cur[s] = id
			m.cand[s] = append(m.cand[s], id)
		}
		_, err := k.do(nbdCmdWrite, uint64(sec)*512, buf, uint32(len(buf)))
		return err
	default:
		got, err := k.do(nbdCmdRead, uint64(sec)*512, nil, uint32(n*512))
		if err != nil {
			return err
		}
		for i := range n {
			if want := skPattern(m.cur[sec+i], sec+i); !bytes.Equal(got[i*512:(i+1)*512], want) {
				return fmt.Errorf("%s: live read of sector %d: %s, want write %#x", m.name, sec+i, skDescribe(got[i*512:(i+1)*512]), m.cur[sec+i])
			}
		}
	}
	return nil
}

// flush sends a FLUSH; once it is acknowledged every write before it is
// what a crash must leave.
func (m *skModel) flush(k *skConn) error {
	if _, err := k.do(nbdCmdFlush, 0, nil, 0); err != nil {
		return err
	}
	for s := range m.cand {
		m.flushed[s] = m.cur[s]
	}
	clear(m.cand)
	return nil
}

// skDescribe names the write a sector's content came from, or says it
// matches none.
func skDescribe(b []byte) string {
	id := binary.BigEndian.Uint32(b)
	if bytes.Equal(b, skPattern(0, 0)) {
		return "zeros (no write)"
	}
	if bytes.Equal(b, skPattern(id, int(binary.BigEndian.Uint32(b[4:])))) {
		return fmt.Sprintf("write %#x of sector %d", id, binary.BigEndian.Uint32(b[4:]))
	}
	return fmt.Sprintf("unrecognised data % x...", b[:16])
}

// check reads the whole device after a restart: a sector not written
// since its last FLUSH must hold its flushed write; one written since, its
// flushed write or one of the later ones. What it holds is then durable.
func (m *skModel) check(k *skConn) error {
	const step = 2048
	for base := m.lo; base < m.hi; base += step {
		got, err := k.do(nbdCmdRead, uint64(base)*512, nil, step*512)
		if err != nil {
			return err
		}
		for i := range step {
			s, b := base+i, got[i*512:(i+1)*512]
			allowed := append([]uint32{m.flushed[s]}, m.cand[s]...)
			ok := false
			for _, id := range allowed {
				if bytes.Equal(b, skPattern(id, s)) {
					m.cur[s], m.flushed[s], ok = id, id, true
					break
				}
			}
			if !ok {
				return fmt.Errorf("%s: sector %d after restart holds %s, want one of writes %#x", m.name, s, skDescribe(b), allowed)
			}
		}
	}
	clear(m.cand)
	return nil
}

// skRun runs random I/O on every device, one goroutine each, until the
// daemon is killed; it returns the I/Os acknowledged, those the kill cut
// short, and an error that is not the kill's doing.
func skRun(d *daemon, models []*skModel, seed uint64, killed *atomic.Bool) (ops, cut int64, err error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var count, cuts atomic.Int64
	for i, m := range models {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			k, e := dialSK(d, m.name)
			for e == nil {
				if e = m.op(k, rng); e == nil {
					count.Add(1)
				}
			}
			if k != nil {
				k.c.Close()
				cuts.Add(1)
			}
			if !killed.Load() || strings.Contains(e.Error(), "live read") {
				mu.Lock()
				err = e
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return count.Load(), cuts.Load(), err
}

// skSetup makes the origin and two snapshots with origin data written
// between them: s1 sees the origin's first writes, s2 both rounds.
func skSetup(t *testing.T, d *daemon, rng *rand.Rand) []*skModel {
	disk := testkit.Sparse(t, d.dir, "disk.img", skSectors*512)
	d.gdm("create", "base", "--table", fmt.Sprintf("0 %d snapshot-origin %s", skSectors, disk))
	origin := skHalves("base", 1, nil)
	models := origin
	for i, name := range []string{"s1", "s2"} {
		for _, m := range origin {
			skWrites(t, d, m, rng, 20)
		}
		models = append(models, skSnapshot(t, d, origin, name, uint32(2+i))...)
	}
	return models
}

// skSnapshot creates snapshot name of the origin, on a new COW file, and
// returns its models: the origin's data now. Its writes are tagged from
// tag, so that no stale exception of an earlier snapshot of the name can pass.
func skSnapshot(t *testing.T, d *daemon, origin []*skModel, name string, tag uint32) []*skModel {
	disk := filepath.Join(d.dir, "disk.img")
	cow := testkit.Sparse(t, d.dir, fmt.Sprintf("%s-%d.cow", name, tag), skCowBytes)
	d.gdm("create", name, "--table", fmt.Sprintf("0 %d snapshot %s %s P %d", skSectors, disk, cow, skChunk))
	return skHalves(name, tag, origin)
}

// skWrites does n random operations on m's device and a FLUSH, with no kill.
func skWrites(t *testing.T, d *daemon, m *skModel, rng *rand.Rand, n int) {
	t.Helper()
	k, err := dialSK(d, m.name)
	if err != nil {
		t.Fatal(err)
	}
	defer k.c.Close()
	for range n {
		if err := m.op(k, rng); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.flush(k); err != nil {
		t.Fatal(err)
	}
}

// Random reads and writes on a snapshot origin and two snapshots of it,
// two connections to each (one per half), checked against a model; every
// 5 rounds a snapshot is replaced by a new one. The daemon is killed with SIGKILL at a random
// moment while they run, 50 times, and started again on the same state
// dir. Each time every device is back with its table, no snapshot is
// invalid, and every device reads what its model says: the origin and
// each snapshot every write a FLUSH covered, a snapshot the origin's data
// as of its creation (not one origin write after it, flushed or not) plus
// its own writes. Then the kernel, in a guest, loads the files as the last
// kill left them and must read what gdm read (skKernelCheck).
func TestSnapshotKill9Loop(t *testing.T) {
	d := startDaemon(t, "")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 99))
	models := skSetup(t, d, rng)
	tables := d.gdm("table")
	const rounds, budget = 50, 150 * time.Second
	start, round, total, cut, over := time.Now(), 0, int64(0), int64(0), false
	for ; round < rounds && !over; round++ {
		var killed atomic.Bool
		delay := time.Duration(20+rng.IntN(400)) * time.Millisecond
		proc := d.cmd.Process
		timer := time.AfterFunc(delay, func() { killed.Store(true); proc.Kill() })
		ops, c, err := skRun(d, models, seed+uint64(round), &killed)
		if timer.Stop() { // every worker failed before the kill
			proc.Kill()
		}
		<-d.exited
		if err != nil {
			t.Fatalf("round %d (kill after %v): %v\ndaemon log: %s", round, delay, err, d.log)
		}
		total, cut = total+ops, cut+c
		d.start()
		if got := d.gdm("table"); got != tables {
			t.Fatalf("round %d: tables after restart:\n%s\nwant\n%s", round, got, tables)
		}
		for _, m := range models {
			if st := d.gdm("status", m.name); strings.Contains(st, "Invalid") || strings.Contains(st, "Overflow") {
				t.Fatalf("round %d: %s after restart: %s", round, m.name, st)
			}
			k, err := dialSK(d, m.name)
			if err != nil {
				t.Fatal(err)
			}
			err = m.check(k)
			k.c.Close()
			if err != nil {
				t.Fatalf("round %d (seed %d, kill after %v, %d ops): %v", round, seed, delay, ops, err)
			}
		}
		// A new snapshot every 5 rounds, for new exceptions to keep
		// coming; not after the last, which leaves the kernel the stores.
		if over = time.Since(start) >= budget; round%5 == 4 && !over && round+1 < rounds {
			i := 2 + 2*(round/5%2)
			t.Logf("round %d: %s was %s", round, models[i].name, strings.TrimSpace(d.gdm("status", models[i].name)))
			d.gdm("remove", models[i].name)
			copy(models[i:], skSnapshot(t, d, models[:2], models[i].name, uint32(4+round/5)))
			tables = d.gdm("table")
		}
	}
	t.Logf("%d rounds in %v, %d I/Os acknowledged, %d cut short by the kill", round, time.Since(start).Round(time.Second), total, cut)
	if round < 10 || total == 0 || cut == 0 {
		t.Fatalf("%d rounds, %d I/Os: the loop proved nothing", round, total)
	}
	skKernelCheck(t, d, []string{models[0].name, models[2].name, models[4].name})
}
