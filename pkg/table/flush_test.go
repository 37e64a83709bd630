package table

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// flushLog records which tables are flushed and which table was live at
// the time; fail makes flushes of one table fail.
type flushLog struct {
	mu      sync.Mutex
	d       *Device
	flushed []*Table
	liveWas []*Table
	fail    *Table
}

func watchFlushes(t *testing.T, d *Device) *flushLog {
	l := &flushLog{d: d}
	f := func(tb *Table) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.flushed = append(l.flushed, tb)
		l.liveWas = append(l.liveWas, d.live.Load())
		if tb == l.fail {
			return errors.New("injected flush failure")
		}
		return nil
	}
	flushHook.Store(&f)
	t.Cleanup(func() { flushHook.Store(nil) })
	return l
}

// flushes returns how often tb was flushed and the live table at its last
// flush.
func (l *flushLog) flushes(tb *Table) (n int, live *Table) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, f := range l.flushed {
		if f == tb {
			n, live = n+1, l.liveWas[i]
		}
	}
	return n, live
}

// flushedOnce checks old was flushed exactly once, while wantLive was the
// live table; when says which moment that is.
func (l *flushLog) flushedOnce(t *testing.T, old, wantLive *Table, when string) {
	t.Helper()
	if n, live := l.flushes(old); n != 1 || live != wantLive {
		t.Fatalf("old table flushed %d times, live then %p (want %p); want once, %s", n, live, wantLive, when)
	}
}

// A FLUSH sent after a table swap goes to the new table, which may map
// other files; so writes answered through the old table are made durable
// as it goes: before the swap when no I/O runs on it (resume quiesced it,
// or the device is suspended, even with noflush), after its holders drain
// on a live swap.
// Tables that never were live are not flushed; Close flushes the live one.
func TestSwapFlushesTheOldTable(t *testing.T) {
	dir := t.TempDir()
	a := testkit.Sparse(t, dir, "a", 1<<20)
	b := testkit.Sparse(t, dir, "b", 1<<20)
	ctx := context.Background()
	// setup makes a device live on a, watches its flushes, and returns it
	// with its live table and load, which loads a table on b.
	setup := func(t *testing.T) (d *Device, l *flushLog, old *Table, load func() *Table) {
		d = newLiveDevice(t, "0 2048 linear "+a+" 0")
		t.Cleanup(func() { d.Close() })
		return d, watchFlushes(t, d), d.live.Load(), func() *Table {
			must(t, d.LoadText("0 2048 linear "+b+" 0"))
			return d.inactive.Load()
		}
	}

	t.Run("quiesced resume flushes before the swap", func(t *testing.T) {
		d, l, old, load := setup(t)
		load()
		must(t, d.Resume(ctx, false))
		l.flushedOnce(t, old, old, "before the swap")
	})

	t.Run("live resume flushes after the drain", func(t *testing.T) {
		d, l, old, load := setup(t)
		next := load()
		must(t, d.Resume(ctx, true))
		l.flushedOnce(t, old, next, "at its destroy")
	})

	t.Run("noflush suspend then resume flushes before the swap", func(t *testing.T) {
		d, l, old, load := setup(t)
		must(t, d.Suspend(ctx, true))
		if n, _ := l.flushes(old); n != 0 {
			t.Fatal("a noflush suspend flushed")
		}
		load()
		must(t, d.Resume(ctx, true))
		l.flushedOnce(t, old, old, "before the swap")
	})

	t.Run("inactive tables are not flushed; Close flushes the live one", func(t *testing.T) {
		d, l, live, load := setup(t)
		replaced := load()
		cleared := load()
		must(t, d.Clear())
		pending := load()
		must(t, d.Close())
		for _, tb := range []*Table{replaced, cleared, pending} {
			if n, _ := l.flushes(tb); n != 0 || !tb.Destroyed() {
				t.Fatalf("an inactive table: flushed %d times, destroyed %v", n, tb.Destroyed())
			}
		}
		if n, _ := l.flushes(live); n != 1 {
			t.Fatalf("Close flushed the live table %d times, want once", n)
		}
	})

	t.Run("a failed flush refuses the swap and loses nothing", func(t *testing.T) {
		d, l, old, load := setup(t)
		l.fail = old
		next := load()
		if err := d.Resume(ctx, false); err == nil {
			t.Fatal("resume succeeded with a failing flush")
		}
		if d.live.Load() != old || d.inactive.Load() != next || old.Destroyed() || next.Destroyed() {
			t.Fatal("a refused resume changed the tables")
		}
		// The gate is down again: I/O runs on the old table.
		got, err := d.Get(ctx)
		if err != nil || got != old {
			t.Fatalf("Get after a refused resume: %p, %v", got, err)
		}
		got.Put()
		l.fail = nil
		if err := d.Resume(ctx, false); err != nil || d.live.Load() != next {
			t.Fatalf("resume once the flush works: %v", err)
		}
	})

	t.Run("a FLUSH during a live swap's drain covers the old table", func(t *testing.T) {
		d, l, old, load := setup(t)
		holder, err := d.Get(ctx) // an I/O still in flight on the old table
		must(t, err)
		var release sync.Once
		t.Cleanup(func() { release.Do(holder.Put) }) // on failure too, or Close would hang
		next := load()
		resumed := make(chan error)
		go func() { resumed <- d.Resume(ctx, true) }()
		testkit.WaitFor(t, 10*time.Second, "the swap", func() bool { return d.live.Load() == next })
		must(t, d.Flush(ctx)) // does not wait for the holder
		if n, _ := l.flushes(old); n != 1 || old.Destroyed() {
			t.Fatalf("FLUSH on the new table flushed the draining old one %d times (destroyed %v); want once, before its destroy", n, old.Destroyed())
		}
		release.Do(holder.Put)
		must(t, <-resumed)
		if n, _ := l.flushes(old); n != 2 {
			t.Fatalf("old table flushed %d times, want 2 (the FLUSH, then its destroy)", n)
		}
		must(t, d.Flush(ctx))
		if n, _ := l.flushes(old); n != 2 {
			t.Fatal("a destroyed old table was flushed again")
		}
	})

	t.Run("a failed flush keeps a suspended device suspended", func(t *testing.T) {
		d, l, old, load := setup(t)
		must(t, d.Suspend(ctx, true))
		l.fail = old
		load()
		if err := d.Resume(ctx, true); err == nil {
			t.Fatal("resume succeeded with a failing flush")
		}
		if d.live.Load() != old || !d.HasInactive() || !d.Suspended() {
			t.Fatal("a refused resume changed the device")
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
