package nbdclient

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/completion"
)

// eventLog is a Batcher that logs Hold and Release, and the completions
// its test adds, in order.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(e string) { l.mu.Lock(); l.events = append(l.events, e); l.mu.Unlock() }
func (l *eventLog) Hold()        { l.add("hold") }
func (l *eventLog) Release()     { l.add("release") }
func (l *eventLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// TestAsyncBurst: the replies to four asynchronous writes come in one
// read; the reader holds the calls' Batcher once before it completes
// them and releases it after, before it reads the socket again. A call
// that Close fails is completed with no hold.
func TestAsyncBurst(t *testing.T) {
	const n, size = 4, 512
	path := serveUnix(t, func(c net.Conn) {
		if fakeHandshake(c) != nil {
			return
		}
		var replies []byte
		for range n {
			var h [requestSize + size]byte
			if _, err := io.ReadFull(c, h[:]); err != nil {
				return
			}
			replies = binary.BigEndian.AppendUint32(replies, magicSimple)
			replies = binary.BigEndian.AppendUint32(replies, 0)
			replies = binary.BigEndian.AppendUint64(replies, binary.BigEndian.Uint64(h[8:]))
		}
		c.Write(replies) // one write: one burst
		<-t.Context().Done()
	})
	cl, err := Dial(testCtx(t), Options{Network: "unix", Address: path, MaxConns: 1, BackoffMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	log := &eventLog{}
	ctx := completion.With(context.Background(), log)
	dones := make(chan error, n+1)
	done := func(err error) { log.add("done"); dones <- err }
	for i := range int64(n) {
		if !cl.WriteAsync(ctx, make([]byte, size), i*size, done) {
			t.Fatal("not taken")
		}
	}
	for range n {
		mustOK(t, wait(t, dones, "a write"))
	}
	want := []string{"hold", "done", "done", "done", "done", "release"}
	// The release comes as the reader goes back to the socket.
	testkit.WaitFor(t, 10*time.Second, "the burst released", func() bool { return len(log.get()) == len(want) })
	if got := log.get(); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if !cl.WriteAsync(ctx, make([]byte, size), 0, done) {
		t.Fatal("not taken")
	}
	cl.Close()
	if err := wait(t, dones, "the write Close fails"); !errors.Is(err, ErrClosed) {
		t.Fatalf("a write held at Close: %v", err)
	}
	if got := log.get()[len(want):]; !slices.Equal(got, []string{"done"}) {
		t.Fatalf("events of a call Close failed %v, want only its done", got)
	}
}

// TestHeldReleasedBeforePageCopy: the reader releases what it holds
// before every read of the socket that may wait, the copy of a spliced
// read's payload up to a page boundary too (copyToPage): a server that
// stalls mid-payload would otherwise keep the replies of other
// connections, which the held Batchers keep queued, waiting for this
// connection's timeout.
func TestHeldReleasedBeforePageCopy(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	defer cli.Close()
	log := &eventLog{}
	c := &conn{nc: cli, held: []completion.Batcher{log}}
	_, w := testPipe(t, 1<<20)
	cl := &call{pipe: w, req: request{typ: cmdRead, length: 8192}}
	copied := make(chan error, 1)
	go func() {
		_, err := c.copyToPage(cl, 100, 8192) // the server sends nothing yet
		copied <- err
	}()
	testkit.WaitFor(t, 10*time.Second, "the held Batcher released while the copy waits for the socket", func() bool {
		return slices.Equal(log.get(), []string{"release"})
	})
	if _, err := srv.Write(make([]byte, pageSize-100)); err != nil {
		t.Fatal(err)
	}
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
}
