package targets

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// A reload: the new table's snapshot over the same COW takes over at its
// resume, with the exceptions the old one added after the new one's New;
// from then on origin writes copy to the new one only, and the old one's
// destroy does not stop them.
func TestSnapshotHandover(t *testing.T) {
	for _, kind := range []string{"P", "N"} {
		t.Run(kind, func(t *testing.T) {
			const chunk = 4096
			orig := fillPattern(t, 16*chunk, 8)
			before := readFile(t, orig)
			cow := tempFile(t, 1<<20)
			o := newSnapTable(t, "snapshot-origin", 128, orig)
			s1 := newSnapTable(t, "snapshot", 128, orig, cow, kind, "8").resume()
			o.mustWrite(make([]byte, chunk), 0, 0)
			s2 := newSnapTable(t, "snapshot", 128, orig, cow, kind, "8")
			o.mustWrite(make([]byte, chunk), chunk, 0) // after s2's New: only s1 has it
			s2.resume()
			o.mustWrite(make([]byte, chunk), 2*chunk, 0)
			old := s1.tg.(*snapshot)
			if _, ok := old.store.Load().lookup(2); ok {
				t.Error("the replaced snapshot still gets copies")
			}
			s1.destroy()
			o.mustWrite(make([]byte, chunk), 3*chunk, 0)
			if got := s2.mustRead(0, 16*chunk); !bytes.Equal(got, before) {
				t.Fatalf("new snapshot differs from the origin's old data at byte %d", firstDiff(got, before))
			}
		})
	}
}

// The origin registry forgets an origin when the last target naming it is
// destroyed, and two tables naming one file share one entry.
func TestOriginRegistryEntries(t *testing.T) {
	orig := fillPattern(t, 64<<10, 9)
	o := newSnapTable(t, "snapshot-origin", 128, orig)
	s := newSnapTable(t, "snapshot", 128, orig, tempFile(t, 1<<20), "N", "8")
	id := o.tg.(*snapOrigin).dev.Identity()
	if o.tg.(*snapOrigin).entry != s.tg.(*snapshot).entry {
		t.Fatal("origin and snapshot of one file got two entries")
	}
	o.destroy()
	s.destroy()
	origins.mu.Lock()
	_, left := origins.m[id]
	origins.mu.Unlock()
	if left {
		t.Error("origin entry left in the registry after every target was destroyed")
	}
}

// While a chunk's copy is in flight (its range held, as a copy holds it),
// both an origin write and a snapshot write to that chunk wait; then both
// go on, and the snapshot keeps the old data under its own write.
func TestSnapshotCopyHoldsBackBothWriters(t *testing.T) {
	const chunk = 8192
	orig, o, s := originAndSnap(t, 16*chunk, 11, 1<<20, "P", "16")
	old := readFile(t, orig)
	locks := &s.tg.(*snapshot).entry.locks
	tok := locks.lock(chunk, 2*chunk, false)
	var once sync.Once
	release := func() { once.Do(tok.unlock) }
	defer release() // a writer that went ahead must not leave the other one stuck
	done := make(chan error, 2)
	go func() { done <- o.tg.WriteAt(t.Context(), make([]byte, 512), chunk, 0) }()
	go func() { done <- s.tg.WriteAt(t.Context(), []byte{0xAA}, chunk+512, 0) }()
	testkit.WaitFor(t, 10*time.Second, "both writers to wait", func() bool { return locks.waiting() == 2 || len(done) > 0 })
	if len(done) > 0 || !bytes.Equal(readFile(t, orig), old) {
		t.Fatal("a writer went ahead during a copy in flight")
	}
	release()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	want := append([]byte(nil), old[chunk:2*chunk]...)
	want[512] = 0xAA
	if got := s.mustRead(chunk, chunk); !bytes.Equal(got, want) {
		t.Errorf("snapshot chunk differs at byte %d", firstDiff(got, want))
	}
}
