package targets

import (
	"context"
	"os"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// snapTable is one table of a snapshot test: one target over its own
// DevSet, as pkg/table would hold it.
type snapTable struct {
	t    testing.TB
	tg   Target
	devs *DevSet
}

// newSnapTable checks and builds one line of type typ, as a table load does.
func newSnapTable(t testing.TB, typ string, sectors uint64, args ...string) *snapTable {
	t.Helper()
	tp, err := Lookup(typ)
	if err != nil {
		t.Fatal(err)
	}
	canon, err := tp.Check(args, sectors)
	if err != nil {
		t.Fatalf("%s %v: %v", typ, args, err)
	}
	devs := NewDevSet(false)
	tg, err := tp.New(canon, sectors, devs)
	if err != nil {
		devs.Close()
		t.Fatalf("%s %v: %v", typ, args, err)
	}
	st := &snapTable{t: t, tg: tg, devs: devs}
	t.Cleanup(st.destroy)
	return st
}

// resume runs the resume hooks, as a table going live.
func (s *snapTable) resume() *snapTable {
	if r, ok := s.tg.(Resumer); ok {
		if err := r.PreResume(context.Background()); err != nil {
			s.t.Fatal(err)
		}
		r.Resume(context.Background())
	}
	return s
}

// destroy runs the destructor and closes the devices, once.
func (s *snapTable) destroy() {
	if s.devs == nil {
		return
	}
	if d, ok := s.tg.(Destroyer); ok {
		if err := d.Destroy(); err != nil {
			s.t.Error(err)
		}
	}
	s.devs.Close()
	s.devs = nil
}

func (s *snapTable) read(off, n int64) ([]byte, error) {
	p := make([]byte, n)
	err := s.tg.ReadAt(context.Background(), p, off)
	return p, err
}

func (s *snapTable) mustRead(off, n int64) []byte {
	s.t.Helper()
	p, err := s.read(off, n)
	if err != nil {
		s.t.Fatalf("read %d@%d: %v", n, off, err)
	}
	return p
}

func (s *snapTable) mustWrite(p []byte, off int64, flags WriteFlags) {
	s.t.Helper()
	if err := s.tg.WriteAt(context.Background(), p, off, flags); err != nil {
		s.t.Fatalf("write %d@%d: %v", len(p), off, err)
	}
}

// fillPattern is a file of size bytes whose every byte depends on seed and
// position, so that a misplaced chunk shows.
func fillPattern(t testing.TB, size int64, seed byte) string {
	t.Helper()
	p := testkit.Sparse(t, t.TempDir(), "dev", size)
	b := make([]byte, size)
	pattern(b, 0, seed)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pattern fills b as the bytes at off of the pattern of seed.
func pattern(b []byte, off int64, seed byte) {
	for i := range b {
		x := uint64(off+int64(i)) * 0x9e3779b97f4a7c15
		b[i] = byte(x>>56) ^ seed
	}
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// originAndSnap is an origin of size bytes filled with the pattern of seed,
// its snapshot-origin table, and a resumed snapshot of kind and chunk
// (sectors) over a fresh COW file of cowSize bytes.
func originAndSnap(t testing.TB, size int64, seed byte, cowSize int64, kind, chunk string) (orig string, o, s *snapTable) {
	t.Helper()
	orig = fillPattern(t, size, seed)
	cow := testkit.Sparse(t, t.TempDir(), "cow", cowSize)
	o = newSnapTable(t, "snapshot-origin", uint64(size/512), orig)
	s = newSnapTable(t, "snapshot", uint64(size/512), orig, cow, kind, chunk).resume()
	return orig, o, s
}
