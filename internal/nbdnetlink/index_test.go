package nbdnetlink

import (
	"errors"
	"testing"
)

// An index the kernel's u32 attribute cannot hold, or that it reads as a
// negative int, is refused before anything is sent: 1<<32 was sent as
// index 0, so CONNECT configured /dev/nbd0 and DISCONNECT ended nbd0's
// connections, whatever device was asked for. The Conn has no socket, so
// a request that got as far as sending fails otherwise.
func TestIndexOutOfRange(t *testing.T) {
	c := &Conn{fd: -1}
	for _, idx := range []int{1 << 32, 1<<32 + 3, 1 << 31, -2} {
		if _, err := c.Connect(Config{Index: idx}); !errors.Is(err, ErrIndex) {
			t.Errorf("connect %d: %v, want ErrIndex", idx, err)
		}
		if err := c.Reconfigure(Config{Index: idx}); !errors.Is(err, ErrIndex) && idx >= 0 {
			t.Errorf("reconfigure %d: %v, want ErrIndex", idx, err)
		}
		if err := c.Disconnect(idx); !errors.Is(err, ErrIndex) {
			t.Errorf("disconnect %d: %v, want ErrIndex", idx, err)
		}
		if _, err := c.Status(idx); !errors.Is(err, ErrIndex) && idx >= 0 {
			t.Errorf("status %d: %v, want ErrIndex", idx, err)
		}
	}
	if _, err := c.Connect(Config{Index: AnyIndex}); errors.Is(err, ErrIndex) {
		t.Errorf("AnyIndex refused: %v", err)
	}
}
