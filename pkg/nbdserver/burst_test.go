package nbdserver

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/completion"
)

// heldLeg is an asynchronous export whose requests the test completes by
// hand, as a leg's reply reader would: it keeps each request's context
// and done.
type heldLeg struct {
	*memExport
	started chan heldReq
}

type heldReq struct {
	ctx  context.Context
	done func(error)
}

func (l *heldLeg) MayAsync() bool { return true }

func (l *heldLeg) ReadAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	return false
}

func (l *heldLeg) WriteAsync(ctx context.Context, p []byte, off int64, done func(error)) bool {
	l.started <- heldReq{ctx, done}
	return true
}

// TestBurstHeldReplies: completions made between a completer's Hold and
// Release (completion.Batcher, found in the request's context) leave
// their replies queued, and Release writes them all; a completion with no
// hold around it is written at once.
func TestBurstHeldReplies(t *testing.T) {
	m := newMem(1 << 20)
	leg := &heldLeg{memExport: m, started: make(chan heldReq, 8)}
	m.as = leg
	_, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	var reqs []byte
	for i := range uint64(4) {
		reqs = requestBytes(reqs, cmdWrite, 0, i+1, i*512, 512, bytes.Repeat([]byte{1}, 512))
	}
	c.write(reqs)
	var held []heldReq
	for range 4 {
		select {
		case r := <-leg.started:
			held = append(held, r)
		case <-time.After(10 * time.Second): // a bound on a hang, not a speed test
			t.Fatal("the writes were not started on the leg")
		}
	}
	b := completion.From(held[0].ctx)
	conn, ok := b.(*conn)
	if !ok {
		t.Fatalf("the request's context carries %T, want the connection", b)
	}
	b.Hold()
	for _, r := range held {
		r.done(nil)
	}
	if !conn.writer.hasPending() {
		t.Fatal("replies completed under a hold were written before its Release")
	}
	b.Release()
	for range 4 {
		if errno, _ := c.simple(); errno != 0 {
			t.Fatalf("write: errno %d", errno)
		}
	}
	c.request(cmdWrite, 0, 5, 0, 512, make([]byte, 512))
	r := <-leg.started
	r.done(nil)
	testkit.WaitFor(t, 10*time.Second, "a reply with no hold written", func() bool { return !conn.writer.hasPending() })
	if errno, cookie := c.simple(); errno != 0 || cookie != 5 {
		t.Fatalf("write: errno %d cookie %d", errno, cookie)
	}
}
