package nbdserver

import (
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// TestWaitingWritesStrandFewChunks: one-byte writes that wait (a hung
// backend, a suspended device), each followed by more than a read
// buffer's worth of other requests, hold at most maxStranded of the
// connection's 256 KiB buffers between them: the budgets charge them a
// byte each, so a buffer each would let a client hold far more memory
// than the bounds say. Every write is still done, and answered.
func TestWaitingWritesStrandFewChunks(t *testing.T) {
	const writes, skipped = 40, 65<<10 + 512 // past maxTake: not pinned
	m := newMem(1 << 20)
	m.block, m.blockAt = make(chan struct{}), 0
	s, sock := startServer(t, testExports{"a": m}, nil)
	c := dial(t, sock)
	c.connect("a", false)
	filler := make([]byte, skipped)
	var b []byte
	for i := range writes {
		b = requestBytes(b, cmdWrite, 0, uint64(i), 0, 1, []byte{byte(i)})
		for k := range 4 { // refused: past the end; their payloads are read past
			b = requestBytes(b, cmdWrite, 0, uint64(1000+4*i+k), 1<<20, skipped, filler)
		}
	}
	go c.write(b)
	testkit.WaitFor(t, 20*time.Second, "every small write waiting", func() bool { return s.InFlight(m) == writes })
	s.mu.Lock()
	stranded := int32(0)
	for sc := range s.conns {
		stranded += sc.br.stranded.Load()
	}
	s.mu.Unlock()
	if stranded > maxStranded {
		t.Fatalf("%d waiting one-byte writes hold %d read buffers they moved on from (at most %d)", writes, stranded, maxStranded)
	}
	close(m.block)
	c.c.SetDeadline(time.Now().Add(20 * time.Second))
	ok := 0
	for range writes * 5 {
		if errno, cookie := c.simple(); errno == 0 && cookie < writes {
			ok++
		}
	}
	if ok != writes {
		t.Fatalf("%d of %d small writes answered without error", ok, writes)
	}
}
