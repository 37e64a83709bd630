package nbdserver

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"
)

// recordConn is a net.Conn that keeps what is written to it.
type recordConn struct {
	net.Conn // nil: only Write and SetWriteDeadline are called
	mu       sync.Mutex
	buf      bytes.Buffer
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *recordConn) SetWriteDeadline(time.Time) error { return nil }

// cookies returns the cookies of the simple replies written, in order.
func (c *recordConn) cookies() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []uint64
	for b := c.buf.Bytes(); len(b) >= 16; b = b[16:] {
		out = append(out, binary.BigEndian.Uint64(b[8:]))
	}
	return out
}

// A reply queued while another goroutine holds the write lock, after that
// writer found the queue empty and before it unlocked, is still written:
// its sender left it for the writer (TryLock failed), so the writer must
// look at the queue again once it has unlocked.
func TestReplyQueuedAsWriterFinishesIsWritten(t *testing.T) {
	rc := &recordConn{}
	w := &replyWriter{nc: rc, pipes: &pipePool{}, budget: &budget{maxN: 8, maxBytes: 1 << 20},
		failed: func(err error) { t.Errorf("write failed: %v", err) }}
	var c conn
	reply := func(cookie uint64) []*reply {
		r := getReply(0)
		c.simpleReply(r, cookie, 0)
		return []*reply{r}
	}
	fired := false
	w.drained = func() {
		if fired {
			return
		}
		fired = true
		// Another request finishes now; its goroutine finds wmu taken and
		// returns, leaving its reply queued.
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.queue(reply(2))
		}()
		<-done
	}
	w.queue(reply(1))
	if got := rc.cookies(); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("replies written: cookies %v, want [1 2]: the one queued as the writer finished was stranded", got)
	}
}
