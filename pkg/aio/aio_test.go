package aio

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// submit runs one request and waits for its done.
func submit(t *testing.T, c *Context, write bool, fd int, p []byte, off int64) error {
	t.Helper()
	got := make(chan error, 1)
	if !c.Submit(write, fd, p, off, func(err error) { got <- err }) {
		t.Fatalf("submission of %d bytes at %d refused", len(p), off)
	}
	select {
	case err := <-got:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no completion in 10 s")
		return nil
	}
}

// Requests complete through the eventfd and the reaper: a write then a
// read of a file give back its bytes, a read past its end is ErrShort,
// and each slot is free again after its done.
func TestSubmitRoundTrip(t *testing.T) {
	c, err := New(4)
	if err != nil {
		t.Skipf("no Linux AIO here: %v", err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
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
	c.mu.Lock()
	free := len(c.free)
	c.mu.Unlock()
	if free != 4 {
		t.Fatalf("%d of 4 slots free after every request completed", free)
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
}
