package table

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

func TestPutWithoutGetPanics(t *testing.T) {
	d := newLiveDevice(t, "0 8 zero")
	tb := d.acquire(Live)
	tb.Put()
	defer func() {
		tb.holders.Add(1) // undo the bad Put so Close can drain
		if err := d.Close(); err != nil {
			t.Error(err)
		}
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "underflow") {
			t.Fatalf("recovered %v, want an underflow panic", r)
		}
	}()
	tb.Put()
}

func TestPutUnderflowWhileDrainingPanics(t *testing.T) {
	tb := mustTable(t, "0 8 zero")
	tb.holders.Add(drainBias) // as a drainer would
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("no panic for a Put below a draining table's zero")
		}
	}()
	tb.Put()
}

// The seed's rule: a table is destroyed only after its last holder puts it,
// and the holder's Put wakes the destroyer; Put itself destroys nothing.
func TestDestroyWaitsForHolders(t *testing.T) {
	dir := t.TempDir()
	f := testkit.Sparse(t, dir, "f", 1<<20)
	d := newLiveDevice(t, "0 2048 linear "+f+" 0")
	holder := d.acquire(Live) // e.g. a long status call
	done := make(chan error)
	go func() { done <- d.Close() }()
	testkit.WaitFor(t, 10*time.Second, "close to start draining", func() bool { return d.Stats().Destroying.Load() == 1 })
	select {
	case err := <-done:
		t.Fatalf("Close returned (%v) while a holder remained", err)
	default:
	}
	if holder.Destroyed() || holder.Devs().Devs()[0].Closed() {
		t.Fatal("table destroyed under its holder")
	}
	// The holder can still do I/O on the table it holds.
	p := make([]byte, 512)
	if err := holder.ReadAt(context.Background(), p, 0); err != nil {
		t.Fatalf("holder's read: %v", err)
	}
	holder.Put()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !holder.Destroyed() || !holder.Devs().Devs()[0].Closed() || holder.Devs().Closes() != 1 {
		t.Fatal("table not destroyed and closed once after the last Put")
	}
	if _, err := d.Get(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
}

func TestSuspendWaitsForInFlightAndHoldsNewIO(t *testing.T) {
	dir := t.TempDir()
	f := testkit.Sparse(t, dir, "f", 1<<20)
	d := newLiveDevice(t, "0 2048 linear "+f+" 0")
	defer d.Close()
	ctx := context.Background()
	inflight, err := d.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	suspended := make(chan error)
	go func() { suspended <- d.Suspend(ctx, false) }()
	testkit.WaitFor(t, 10*time.Second, "the suspend gate", func() bool { return d.gate.Load() != nil })
	select {
	case err := <-suspended:
		t.Fatalf("Suspend returned (%v) with I/O in flight", err)
	default:
	}
	inflight.Put()
	if err := <-suspended; err != nil {
		t.Fatal(err)
	}
	if !d.Suspended() {
		t.Fatal("not suspended")
	}
	// New I/O waits...
	read := make(chan error)
	go func() { read <- d.ReadAt(ctx, make([]byte, 512), 0) }()
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := d.Get(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get on a suspended device: %v, want it to wait until the deadline", err)
	}
	select {
	case err := <-read:
		t.Fatalf("read completed (%v) on a suspended device", err)
	default:
	}
	// ...until resume.
	if err := d.Resume(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil {
		t.Fatalf("read after resume: %v", err)
	}
}

func TestSuspendGivesUpWhenContextEnds(t *testing.T) {
	d := newLiveDevice(t, "0 8 zero")
	defer d.Close()
	stuck, _ := d.Get(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := d.Suspend(ctx, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Suspend = %v, want deadline exceeded", err)
	}
	stuck.Put()
	if d.Suspended() {
		t.Fatal("device left suspended after a failed suspend")
	}
	if err := d.ReadAt(context.Background(), make([]byte, 512), 0); err != nil {
		t.Fatalf("I/O after a failed suspend: %v", err)
	}
	if stuck.Holders() != 0 {
		t.Fatalf("holders = %d after undrain", stuck.Holders())
	}
}

// resume --live sends new I/O to the new table at once, while the old one
// waits for its holders before it is destroyed.
func TestResumeLiveDoesNotWaitForOldHolders(t *testing.T) {
	dir := t.TempDir()
	f := testkit.Sparse(t, dir, "f", 1<<20)
	d := newLiveDevice(t, "0 2048 linear "+f+" 0")
	defer d.Close()
	ctx := context.Background()
	old, _ := d.Get(ctx)
	if err := d.LoadText("0 1024 linear " + f + " 0\n1024 1024 linear " + f + " 1024"); err != nil {
		t.Fatal(err)
	}
	resumed := make(chan error)
	go func() { resumed <- d.Resume(ctx, true) }()
	testkit.WaitFor(t, 10*time.Second, "the swap", func() bool { return d.live.Load() != old })
	nt, err := d.Get(ctx) // not blocked by the old table's holder
	if err != nil || nt == old || nt.Destroyed() {
		t.Fatalf("Get after live swap = %v, %v", nt, err)
	}
	nt.Put()
	if old.Destroyed() {
		t.Fatal("old table destroyed with a holder")
	}
	old.Put()
	if err := <-resumed; err != nil {
		t.Fatal(err)
	}
	if !old.Destroyed() || old.Devs().Closes() != 1 {
		t.Fatal("old table not destroyed after its holder left")
	}
	if g := d.Stats().Generation.Load(); g != 2 {
		t.Fatalf("generation = %d, want 2", g)
	}
}

func TestLoadRefusedKeepsTables(t *testing.T) {
	d := newLiveDevice(t, "0 8 zero")
	defer d.Close()
	if err := d.LoadText("0 8 zero"); err != nil {
		t.Fatal(err)
	}
	inactive := d.inactive.Load()
	err := d.LoadText("0 8 zero\n16 8 zero")
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 {
		t.Fatalf("bad table: %v", err)
	}
	if d.inactive.Load() != inactive || inactive.Destroyed() {
		t.Fatal("a refused load changed the inactive table")
	}
	if d.Stats().LoadFails.Load() != 1 {
		t.Fatal("load failure not counted")
	}
	if err := d.Clear(); err != nil || d.HasInactive() || !inactive.Destroyed() {
		t.Fatalf("clear: %v, inactive left: %v", err, d.HasInactive())
	}
}

// The stress test of the seed's rules: I/O goroutines verify their data while
// another goroutine swaps between two layouts of the same bytes hundreds of
// times, with both resume modes. No I/O may run on a destroyed table, and
// every table must be destroyed exactly once with its files closed.
func TestStressSwapUnderIO(t *testing.T) {
	dir := t.TempDir()
	files := []string{testkit.Sparse(t, dir, "a", 8<<20), testkit.Sparse(t, dir, "b", 8<<20)}
	const sectors = 8 << 11
	// Both layouts put device sector s at the same file byte: first half on
	// a, second half on b.
	one := fmt.Sprintf("0 %d linear %s 0\n%d %d linear %s 0\n", sectors/2, files[0], sectors/2, sectors/2, files[1])
	var many strings.Builder
	for s := uint64(0); s < sectors; s += 64 {
		f, off := files[0], s
		if s >= sectors/2 {
			f, off = files[1], s-sectors/2
		}
		fmt.Fprintf(&many, "%d 64 linear %s %d\n", s, f, off)
	}
	layouts := []string{one, many.String()}

	d := NewDevice("stress", false, discardLog())
	var tables []*Table
	load := func(text string) {
		tb := mustTable(t, text)
		tables = append(tables, tb)
		if err := d.Load(tb); err != nil {
			t.Fatal(err)
		}
	}
	load(one)
	ctx := context.Background()
	if err := d.Resume(ctx, false); err != nil {
		t.Fatal(err)
	}

	const workers = 4
	var stop atomic.Bool
	var ios atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 99))
			region := int64(sectors*512/workers) * int64(w) // each worker owns a quarter
			buf, back := make([]byte, 64<<10), make([]byte, 64<<10)
			for i := 0; !stop.Load() && i < 200000; i++ {
				n := int64(512 * (1 + r.IntN(128)))
				off := region + r.Int64N(int64(sectors*512/workers)-n)
				for j := range buf[:n] {
					buf[j] = byte(i + j)
				}
				for _, write := range []bool{true, false} {
					tb, err := d.Get(ctx)
					if err != nil {
						errs <- err
						return
					}
					if tb.Destroyed() {
						errs <- fmt.Errorf("Get returned a destroyed table")
					}
					if write {
						err = tb.WriteAt(ctx, buf[:n], off, 0)
					} else {
						err = tb.ReadAt(ctx, back[:n], off)
					}
					if tb.Destroyed() || tb.Devs().Closes() != 0 {
						errs <- fmt.Errorf("table destroyed during an I/O")
					}
					tb.Put()
					if err != nil {
						errs <- err
						return
					}
				}
				if !bytes.Equal(buf[:n], back[:n]) {
					errs <- fmt.Errorf("worker %d: read back differs at %d", w, off)
					return
				}
				ios.Add(1)
			}
		})
	}
	// A status reader holds tables too, briefly, like a scrape.
	wg.Go(func() {
		for !stop.Load() {
			_ = d.View(Live, func(tb *Table) error { _ = tb.Status(); return nil })
		}
	})
	const swaps = 300
	for i := range swaps {
		load(layouts[(i+1)%2])
		if err := d.Resume(ctx, i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if len(tables) != swaps+1 {
		t.Fatalf("%d tables, want %d", len(tables), swaps+1)
	}
	for i, tb := range tables {
		if !tb.Destroyed() || tb.Devs().Closes() != 1 {
			t.Fatalf("table %d: destroyed=%v closes=%d", i, tb.Destroyed(), tb.Devs().Closes())
		}
		for _, dev := range tb.Devs().Devs() {
			if !dev.Closed() {
				t.Fatalf("table %d left %s open", i, dev.Path())
			}
		}
	}
	if ios.Load() == 0 {
		t.Fatal("no I/O ran during the swaps")
	}
	t.Logf("%d verified write+read pairs across %d swaps", ios.Load(), swaps)
}

// The interleaving Get must survive: a getter reads the live slot, then a
// swap destroys that table before the getter counts itself. Counting, then
// re-checking the slot, must make it let go.
func TestGetRechecksAfterCounting(t *testing.T) {
	d := newLiveDevice(t, "0 8 zero")
	defer d.Close()
	old := d.live.Load() // a getter has read the slot...
	if err := d.LoadText("0 8 zero"); err != nil {
		t.Fatal(err)
	}
	if err := d.Resume(context.Background(), true); err != nil { // ...and a swap destroys it
		t.Fatal(err)
	}
	if !old.Destroyed() {
		t.Fatal("old table not destroyed by the swap")
	}
	if ok, _ := d.tryGet(old); ok {
		t.Fatal("Get kept a table that a swap had destroyed")
	}
	if n := old.Holders(); n != 0 {
		t.Fatalf("holders %d after the getter let go", n)
	}
	if nt, err := d.Get(context.Background()); err != nil || nt == old {
		t.Fatalf("Get = %v, %v; want the new table", nt, err)
	} else {
		nt.Put()
	}
}

// TestPanickingIOGivesHolderBack: a target whose read panics (a bug; the
// NBD server answers that request with an error and serves on) still
// gives back the table reference the read took, so that the table's
// destroy, which waits for its holders, does not wait forever.
func TestPanickingIOGivesHolderBack(t *testing.T) {
	d := newLiveDevice(t, "0 8 test-panic p")
	live := d.acquire(Live)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the read did not panic")
			}
		}()
		d.ReadAt(context.Background(), make([]byte, 512), 0)
	}()
	if n := live.Holders(); n != 1 { // the one taken here
		t.Fatalf("%d holders after a read that panicked, want 1", n)
	}
	live.Put()
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the device's Close waits for a holder the panicking read never gave back")
	}
}
