package nbdclient

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// deafClient dials a server that does the handshake and then reads
// nothing: a request's write blocks in the writer.
func deafClient(t *testing.T, opts Options) (*Client, net.Conn) {
	t.Helper()
	cli, srv := net.Pipe()
	go fakeHandshake(srv)
	opts.Dial = func(context.Context) (net.Conn, error) { return cli, nil }
	opts.BackoffMin = time.Hour
	cl, err := Dial(testCtx(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	t.Cleanup(func() { srv.Close() }) // first: no one would read the DISC
	return cl, srv
}

// writerStuck says whether c's writer is in a write.
func writerStuck(c *conn) bool {
	if c.wmu.TryLock() {
		c.wmu.Unlock()
		return false
	}
	return true
}

// wait bounds a call that should return, so that a hang fails the test
// (a bound on a hang, not a speed test).
func wait(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

// TestTimeoutStuckSend: a write the server never reads ends with
// ErrTimeout: the connection's watchdog, not a timer of the request's own,
// kills the connection, which ends the write.
func TestTimeoutStuckSend(t *testing.T) {
	cl, _ := deafClient(t, Options{RequestTimeout: 200 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- cl.WriteAt(context.Background(), make([]byte, 4096), 0, false) }()
	if err := wait(t, done, "a write to a deaf server"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("write to a deaf server: %v", err)
	}
	if cl.Connected() {
		t.Fatal("the connection outlived a timeout")
	}
}

// TestCancelQueued cancels a request queued behind a write stuck in the
// writer: it returns at once, was never sent, and the connection lives on
// (nothing of it was written, the stream is whole).
func TestCancelQueued(t *testing.T) {
	cl, _ := deafClient(t, Options{RequestTimeout: -1})
	stuck := make(chan error, 1)
	go func() { stuck <- cl.WriteAt(context.Background(), make([]byte, 4096), 0, false) }()
	c := cl.conns[0]
	testkit.WaitFor(t, 10*time.Second, "the first write stuck in send", func() bool { return writerStuck(c) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cl.WriteAt(ctx, make([]byte, 4096), 4096, false) }()
	testkit.WaitFor(t, 10*time.Second, "the second write queued", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue) == 1
	})
	cancel()
	if err := wait(t, done, "a cancelled queued write"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled queued write: %v", err)
	}
	if !c.alive() || len(c.slots) != 1 {
		t.Fatalf("after the cancel: alive %v, %d slots held", c.alive(), len(c.slots))
	}
	cl.Close()
	if err := wait(t, stuck, "the stuck write at close"); !errors.Is(err, ErrClosed) {
		t.Fatalf("stuck write at close: %v", err)
	}
}

// TestBatchedSend: requests queued while the writer is busy go out
// together, in one write of their headers and payloads (a net.Pipe cannot
// writev, so small payloads are copied into the batch).
func TestBatchedSend(t *testing.T) {
	cl, srv := deafClient(t, Options{RequestTimeout: -1})
	c := cl.conns[0]
	done := make(chan error, 4)
	go func() { done <- cl.WriteAt(context.Background(), make([]byte, 512), 0, false) }()
	testkit.WaitFor(t, 10*time.Second, "the first write stuck in send", func() bool { return writerStuck(c) })
	for i := range 3 {
		go func() { done <- cl.WriteAt(context.Background(), make([]byte, 512), int64(i+1)*512, false) }()
	}
	testkit.WaitFor(t, 10*time.Second, "3 writes queued", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue) == 3
	})
	// Unblock the writer by reading what the server side holds: first the
	// stuck request, then the batch of three in one piece.
	first := make([]byte, requestSize+512)
	if _, err := io.ReadFull(srv, first); err != nil {
		t.Fatal(err)
	}
	batch := make([]byte, 3*(requestSize+512))
	n, err := srv.Read(batch) // net.Pipe hands over one Write per Read, up to len(batch)
	if err != nil || n != len(batch) {
		t.Fatalf("batch of three arrived as %d bytes (%v), want %d in one write", n, err, len(batch))
	}
	srv.Close() // no one to read the DISC
	cl.Close()
	for range 4 {
		wait(t, done, "a write at close")
	}
}
