package aio

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gdm-project/gdm/internal/testkit"
)

// submit runs one request and waits for its done.
func submit(t *testing.T, c *Context, write bool, fd int, p []byte, off int64) error {
	t.Helper()
	return testkit.Await(t, func(done func(error)) bool { return c.Submit(write, fd, p, off, done) })
}

// contextAndFile is a context of 4 slots and an empty file's descriptor.
func contextAndFile(t *testing.T) (*Context, int) {
	t.Helper()
	c, err := New(4)
	if err != nil {
		t.Skipf("no Linux AIO here: %v", err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return c, int(f.Fd())
}

// Requests complete through the eventfd and the reaper: a write then a
// read of a file give back its bytes, a read past its end is ErrShort,
// and each slot is free again after its done.
func TestSubmitRoundTrip(t *testing.T) {
	c, fd := contextAndFile(t)
	data := bytes.Repeat([]byte("aio-test"), 1024)
	if err := submit(t, c, true, fd, data, 4096); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if err := submit(t, c, false, fd, got, 4096); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, data))
	}
	if err := submit(t, c, false, fd, got, 4096+int64(len(data))-100); !errors.Is(err, ErrShort) {
		t.Fatalf("read past the end: %v, want ErrShort", err)
	}
	for i := 0; i < 20; i++ { // more requests than slots, one after another
		if err := submit(t, c, false, fd, got[:512], 0); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st != (Stats{Submitted: 23}) {
		t.Fatalf("stats after 23 requests, all completed: %+v", st)
	}
	c.mu.Lock()
	free := len(c.free)
	c.free = nil // every slot taken, as by requests in flight
	c.mu.Unlock()
	if free != 4 {
		t.Fatalf("%d of 4 slots free after every request completed", free)
	}
	if c.Submit(false, fd, got[:512], 0, func(error) { t.Error("done called") }) || c.Stats().NoSlot != 1 || c.Stats().InFlight != 4 {
		t.Fatalf("a submission with no slot free: stats %+v, want NoSlot 1 and 4 in flight", c.Stats())
	}
}

// A submission the kernel refuses (a descriptor that is not open)
// reports false and gives its slot back with its done forgotten, so
// nothing can call it.
func TestSubmitRefused(t *testing.T) {
	c, err := New(1)
	if err != nil {
		t.Skipf("no Linux AIO here: %v", err)
	}
	if c.Submit(false, 1<<20, make([]byte, 512), 0, func(error) { t.Error("done called") }) {
		t.Fatal("a submission on a descriptor that is not open was taken")
	}
	c.mu.Lock()
	free, done := len(c.free), c.slots[0].done
	c.mu.Unlock()
	if free != 1 || done != nil {
		t.Fatalf("a refused submission kept its slot (%d free) or its done (%v)", free, done != nil)
	}
	if st := c.Stats(); st != (Stats{Refused: 1}) {
		t.Fatalf("stats after a refused submission: %+v", st)
	}
}

// iovecs points an iovec at each buffer.
func iovecs(bufs ...[]byte) []unix.Iovec {
	iov := make([]unix.Iovec, len(bufs))
	for i, b := range bufs {
		iov[i].Base = &b[0]
		iov[i].SetLen(len(b))
	}
	return iov
}

// A vectored write puts its buffers one after another from its offset,
// a vectored read fills them in order, and one that runs past the end
// is ErrShort for the sum of their lengths.
func TestSubmitVectored(t *testing.T) {
	c, fd := contextAndFile(t)
	a, b, d := bytes.Repeat([]byte("a"), 512), bytes.Repeat([]byte("bb"), 1024), bytes.Repeat([]byte("c"), 1536)
	if err := testkit.Await(t, func(done func(error)) bool { return c.SubmitV(true, fd, iovecs(a, b, d), 1024, done) }); err != nil {
		t.Fatal(err)
	}
	whole := make([]byte, 4096)
	if err := submit(t, c, false, fd, whole, 1024); err != nil || !bytes.Equal(whole, bytes.Join([][]byte{a, b, d}, nil)) {
		t.Fatalf("read back the vectored write: %v, or other bytes", err)
	}
	x, y := make([]byte, 1000), make([]byte, 3096)
	if err := testkit.Await(t, func(done func(error)) bool { return c.SubmitV(false, fd, iovecs(x, y), 1024, done) }); err != nil ||
		!bytes.Equal(x, whole[:1000]) || !bytes.Equal(y, whole[1000:]) {
		t.Fatalf("vectored read: %v, or other bytes", err)
	}
	if err := testkit.Await(t, func(done func(error)) bool { return c.SubmitV(false, fd, iovecs(x, y), 2048, done) }); !errors.Is(err, ErrShort) {
		t.Fatalf("vectored read past the end: %v, want ErrShort", err)
	}
}

// Where the kernel has fewer AIO events to give than the shared context
// asks for (fs.aio-max-nr used up: io_setup says EAGAIN), it settles for
// fewer slots, halving down to minSharedSlots; another error, or EAGAIN
// even at the least, gives no context.
func TestSharedSettlesForFewerSlots(t *testing.T) {
	limit := 300
	var asked []int
	fake := func(n int) (*Context, error) {
		asked = append(asked, n)
		if n > limit {
			return nil, unix.EAGAIN
		}
		return &Context{slots: make([]slot, n)}, nil
	}
	c, err := newShared(fake)
	if err != nil || len(c.slots) != 256 {
		t.Fatalf("with room for %d: %v, %v (asked %v), want 256 slots", limit, c, err, asked)
	}
	limit, asked = 10, nil
	if c, err := newShared(fake); c != nil || !errors.Is(err, unix.EAGAIN) || asked[len(asked)-1] != minSharedSlots {
		t.Fatalf("with room for %d: %v, %v (asked %v), want none after %d", limit, c, err, asked, minSharedSlots)
	}
	asked = nil
	if c, err := newShared(func(n int) (*Context, error) { asked = append(asked, n); return nil, unix.ENOSYS }); c != nil || len(asked) != 1 {
		t.Fatalf("no AIO at all: %v, %v (asked %v), want one try", c, err, asked)
	}
}
