package targets

import (
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// An exclusive request waiting for a range (an origin write behind a
// snapshot read) is not overtaken by shared requests that overlap it and
// come later: a shared tryLock is refused and a shared lock waits until
// the exclusive one has had its turn. Without that, reads that kept
// overlapping each other kept a write waiting for as long as they came.
// Shared requests that do not overlap it still go ahead.
func TestRangeLockSharedDoNotOvertakeWaitingExclusive(t *testing.T) {
	var l rangeLock
	first := l.lock(0, 4096, true)
	exclusive := make(chan rangeToken)
	go func() { exclusive <- l.lock(0, 8192, false) }()
	testkit.WaitFor(t, 10*time.Second, "the exclusive request waits", func() bool { return l.waiting() == 1 })
	if tok, ok := l.tryLock(2048, 6144, true); ok {
		tok.unlock()
		t.Fatal("a shared tryLock overtook a waiting exclusive request")
	}
	other, ok := l.tryLock(8192, 12288, true)
	if !ok {
		t.Fatal("a shared tryLock that overlaps no waiting request was refused")
	}
	other.unlock()
	shared := make(chan rangeToken)
	go func() { shared <- l.lock(2048, 6144, true) }()
	testkit.WaitFor(t, 10*time.Second, "the later shared request waits", func() bool { return l.waiting() == 2 })
	first.unlock()
	ex := <-exclusive
	select {
	case tok := <-shared:
		tok.unlock()
		t.Fatal("the shared request ran while the exclusive one held the range")
	default:
	}
	ex.unlock()
	(<-shared).unlock()
}
