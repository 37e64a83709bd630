package targets

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// The delay target's life around its held requests: cancellation,
// suspend and resume, destroy, and what holding costs.

func TestDelayCancelledRequestReturnsAndLeaves(t *testing.T) {
	fx := newDelayFixture(t, "R 0 3600000")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fx.tg.WriteAt(ctx, []byte("x"), 0, 0) }()
	testkit.WaitFor(t, 10*time.Second, "write held", func() bool { return fx.tg.Status(StatusInfo) == "0 1 0" })
	cancel()
	if err := released(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write: %v", err)
	}
	if s := fx.tg.Status(StatusInfo); s != "0 0 0" {
		t.Fatalf("status %q after cancel, want 0 0 0", s)
	}
	if got := at(t, fx.r, 0, 1); got[0] != 0 {
		t.Fatal("a cancelled write was written")
	}
}

// released waits for one of the requests started by startHeld (or
// another goroutine) to end, and returns its error.
func released(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("held request not released")
		return nil
	}
}

// startHeld starts n reads on tg and waits until all are held.
func startHeld(t *testing.T, tg *delayTarget, n int) chan error {
	t.Helper()
	done := make(chan error, n)
	for range n {
		go func() { done <- tg.ReadAt(context.Background(), make([]byte, 512), 0) }()
	}
	testkit.WaitFor(t, 10*time.Second, "reads held", func() bool { return tg.queue.waiting()[delayRead] == n })
	return done
}

func TestDelayPreSuspendReleasesAllAndResumeDelaysAgain(t *testing.T) {
	fx := newDelayFixture(t, "R 0 3600000")
	ctx := context.Background()
	done := startHeld(t, fx.tg, 3)
	if s := fx.tg.Status(StatusInfo); s != "3 0 0" {
		t.Fatalf("INFO %q while 3 reads wait", s)
	}
	fx.tg.PreSuspend(ctx)
	for range 3 {
		if err := released(t, done); err != nil {
			t.Fatal(err)
		}
	}
	// Suspended: not delayed (an hour's wait would hang the test).
	if err := fx.tg.ReadAt(ctx, make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
	fx.tg.PostSuspend(ctx)
	if err := fx.tg.PreResume(ctx); err != nil {
		t.Fatal(err)
	}
	fx.tg.Resume(ctx)
	done = startHeld(t, fx.tg, 1)
	fx.tg.PreSuspend(ctx)
	released(t, done)
	fx.tg.PreSuspendUndo(ctx)
	done = startHeld(t, fx.tg, 1) // a failed suspend delays again
	fx.tg.PreSuspend(ctx)
	released(t, done)
}

func TestDelayDestroyLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	fx := newDelayFixture(t, "R 0 3600000")
	done := startHeld(t, fx.tg, 4)
	if err := fx.tg.Destroy(); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		released(t, done)
	}
	testkit.WaitFor(t, 10*time.Second, "goroutines back to their number", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func TestDelayWaitersCostNoGoroutineOfTheTarget(t *testing.T) {
	const n = 200
	fx := newDelayFixture(t, "R 0 3600000")
	before := runtime.NumGoroutine()
	done := startHeld(t, fx.tg, n)
	if got := runtime.NumGoroutine() - before; got > n+2 {
		t.Fatalf("%d goroutines for %d held requests: the target runs some of its own per request", got, n)
	}
	if s := fx.tg.Status(StatusInfo); s != "200 0 0" {
		t.Fatalf("INFO %q", s)
	}
	fx.tg.PreSuspend(context.Background())
	for range n {
		released(t, done)
	}
}
