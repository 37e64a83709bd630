package table

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/gdm-project/gdm/pkg/targets"
)

// slowDestroy, while set, is where a test-slow-destroy target's
// destructor says it has begun, and then waits to be let go on.
var slowDestroy struct {
	begun, release chan struct{}
}

// test-slow-destroy <name>: a recorder whose destructor waits for the
// test, so that a test can act while a table is being destroyed.
func init() {
	check := func(args []string, _ uint64) ([]string, error) {
		if len(args) != 1 {
			return nil, fmt.Errorf("%w: <name>", targets.ErrArgCount)
		}
		return args, nil
	}
	newSlow := func(args []string, _ uint64, _ *targets.DevSet) (targets.Target, error) {
		return &slowDestroyer{recorder{name: args[0]}}, nil
	}
	if err := targets.Register(&targets.Type{Name: "test-slow-destroy", Check: check, New: newSlow}); err != nil {
		panic(err)
	}
}

type slowDestroyer struct{ recorder }

func (s *slowDestroyer) Destroy() error {
	s.recorder.Destroy()
	slowDestroy.begun <- struct{}{}
	<-slowDestroy.release
	return nil
}

// After a live swap the old table is flushed by every FLUSH until its
// destroy ends (flushRetired). Its destructors are the end of its
// targets: once they have begun, a FLUSH must not reach them (the
// targets.Flusher contract: a flush before the destructor, none after),
// nor run beside their suspend hooks; the destroy's own flush, after the
// drain, has made durable every write the old table took. The FLUSH here
// comes while the old table's second destructor waits.
func TestNoFlushOfARetiredTableAfterItsDestructors(t *testing.T) {
	slowDestroy.begun, slowDestroy.release = make(chan struct{}), make(chan struct{})
	d := newLiveDevice(t, "0 8 test-recorder old\n8 8 test-slow-destroy slow")
	defer d.Close()
	must(t, d.LoadText("0 16 zero"))
	takeEvents()
	ctx := context.Background()
	resumed := make(chan error)
	go func() { resumed <- d.Resume(ctx, true) }()
	<-slowDestroy.begun // the destructors have begun; the old table is still retiring
	err := d.Flush(ctx)
	close(slowDestroy.release)
	if rerr := <-resumed; rerr != nil || err != nil {
		t.Fatalf("resume: %v; flush: %v", rerr, err)
	}
	ev := takeEvents()
	destroyed := slices.Index(ev, "old:destroy")
	if destroyed < 0 || slices.Contains(ev[destroyed:], "old:flush") {
		t.Fatalf("hooks of the old table: %v; want no flush after its destructor", ev)
	}
}

// A FLUSH that reaches a retired table once its destroy's flush has
// failed gets that failure: the old table's answered writes are not
// durable, and the FLUSH must not say they are.
func TestFlushOfARetiredTableReportsItsFailedLastFlush(t *testing.T) {
	slowDestroy.begun, slowDestroy.release = make(chan struct{}), make(chan struct{})
	d := newLiveDevice(t, "0 8 test-slow-destroy slow")
	defer d.Close()
	old := d.live.Load()
	watchFlushes(t, d).fail = old
	must(t, d.LoadText("0 8 zero"))
	ctx := context.Background()
	resumed := make(chan error)
	go func() { resumed <- d.Resume(ctx, true) }()
	<-slowDestroy.begun // the destroy's flush has failed; the old table still retires
	err := d.Flush(ctx)
	close(slowDestroy.release)
	if rerr := <-resumed; rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil {
		t.Fatal("a FLUSH after the retired table's last flush failed succeeded")
	}
	takeEvents()
}

// When a retired table's last flush (at its destroy, after a live swap)
// fails, the next client FLUSH says so, though it reaches only the new
// table: the writes the old table answered may not be durable. It says so
// once, as Linux reports a writeback error to the next fsync.
func TestFlushAfterALiveSwapReportsALostLastFlush(t *testing.T) {
	d := newLiveDevice(t, "0 8 test-recorder old")
	defer d.Close()
	watchFlushes(t, d).fail = d.live.Load()
	must(t, d.LoadText("0 8 zero"))
	ctx := context.Background()
	must(t, d.Resume(ctx, true)) // the swap is made; the old table's flush failed
	if err := d.Flush(ctx); err == nil {
		t.Fatal("the FLUSH after a replaced table's failed last flush succeeded")
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatalf("the FLUSH after that: %v, want success (reported once)", err)
	}
	takeEvents()
}
