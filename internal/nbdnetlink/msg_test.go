package nbdnetlink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// le is the hand-built bytes' byte order; netlink uses the host's.
func needLittleEndian(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("hand-built bytes are little-endian")
	}
}

// A CONNECT as the kernel parses it: index, size, block size, timeouts,
// flags and a nested socket list, each attribute padded to 4 bytes.
func TestConnectEncoding(t *testing.T) {
	needLittleEndian(t)
	cfg := Config{Index: 3, Sockets: []int{7, 9}, SizeBytes: 1 << 20, BlockSize: 4096,
		ServerFlags: FlagHasFlags | FlagSendFlush, Timeout: 1500 * time.Millisecond, DeadTimeout: 60 * time.Second}
	got := message(0x1c, unix.NLM_F_REQUEST|unix.NLM_F_ACK, 5, cmdConnect, familyVersion, cfg.attrs(true))
	want := []byte{
		0x74, 0, 0, 0, 0x1c, 0, 0x05, 0, 5, 0, 0, 0, 0, 0, 0, 0, // nlmsghdr: len 116, family, REQUEST|ACK, seq 5
		1, 1, 0, 0, // genl: CONNECT, version 1
		8, 0, 1, 0, 3, 0, 0, 0, // INDEX 3
		12, 0, 2, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, // SIZE_BYTES 1 MiB
		12, 0, 3, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, // BLOCK_SIZE 4096
		12, 0, 4, 0, 2, 0, 0, 0, 0, 0, 0, 0, // TIMEOUT 2 (1.5s rounded up)
		12, 0, 8, 0, 60, 0, 0, 0, 0, 0, 0, 0, // DEAD_CONN_TIMEOUT 60
		12, 0, 5, 0, 5, 0, 0, 0, 0, 0, 0, 0, // SERVER_FLAGS
		28, 0, 7, 0x80, // SOCKETS, nested
		12, 0, 1, 0x80, 8, 0, 1, 0, 7, 0, 0, 0, // SOCK_ITEM { FD 7 }
		12, 0, 1, 0x80, 8, 0, 1, 0, 9, 0, 0, 0, // SOCK_ITEM { FD 9 }
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("connect message:\n got %v\nwant %v", got, want)
	}
}

// RECONFIGURE never sends server flags, and leaves out what is zero.
func TestReconfigureEncoding(t *testing.T) {
	needLittleEndian(t)
	got := Config{Index: 0, SizeBytes: 2 << 20, ServerFlags: FlagReadOnly}.attrs(false)
	want := []byte{8, 0, 1, 0, 0, 0, 0, 0, 12, 0, 2, 0, 0, 0, 0x20, 0, 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Fatalf("reconfigure attributes:\n got %v\nwant %v", got, want)
	}
}

// A string attribute is NUL-terminated and padded (the family lookup).
func TestStringAttr(t *testing.T) {
	got := attrs(nil).str(ctrlAttrFamilyName, "nbd")
	want := []byte{8, 0, 2, 0, 'n', 'b', 'd', 0}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	got = attrs(nil).str(ctrlAttrFamilyName, "nbd1")
	if len(got) != 12 || got[0] != 9 {
		t.Fatalf("padded string: %v", got)
	}
}

// The kernel's replies: a CONNECT reply then an ack, a negative ack, a
// stale message of an earlier request, a STATUS device list.
func TestAbsorbReplies(t *testing.T) {
	needLittleEndian(t)
	c := &Conn{seq: 4}
	reply := message(0x1c, 0, 4, cmdConnect, 1, attrs(nil).u32(attrIndex, 6))
	stale := message(0x1c, 0, 3, cmdConnect, 1, attrs(nil).u32(attrIndex, 9))
	var got map[uint16][]byte
	buf := append(stale, reply...)
	if done, err := c.absorb(buf, &got); done || err != nil {
		t.Fatalf("reply: done %v err %v", done, err)
	}
	if v := binary.NativeEndian.Uint32(got[attrIndex]); v != 6 {
		t.Fatalf("index %d, want 6 (a stale reply must be skipped)", v)
	}
	clear(buf) // the buffer takes the next datagram
	if v := binary.NativeEndian.Uint32(got[attrIndex]); v != 6 {
		t.Fatalf("index %d after the buffer's reuse: the reply must be copied", v)
	}
	if done, err := c.absorb(ack(4, 0), &got); !done || err != nil {
		t.Fatalf("ack: done %v err %v", done, err)
	}
	if _, err := c.absorb(ack(4, -int32(unix.EBUSY)), &got); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("negative ack: %v", err)
	}
	if _, err := c.absorb(message(0x1c, 0, 4, cmdConnect, 1, attrs(nil).u32(attrIndex, 6))[:20], &got); err == nil {
		t.Fatal("a truncated message was accepted")
	}
}

func ack(seq uint32, errno int32) []byte {
	b := binary.NativeEndian.AppendUint32(nil, 36)
	b = binary.NativeEndian.AppendUint16(b, unix.NLMSG_ERROR)
	b = binary.NativeEndian.AppendUint16(b, 0)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = binary.NativeEndian.AppendUint32(b, uint32(errno))
	return append(b, make([]byte, 16)...) // the request's header, echoed
}

func TestParseDevices(t *testing.T) {
	dev := func(i uint32, conn byte) attrs {
		return attrs(nil).nest(deviceItem, attrs(nil).u32(deviceIndex, i).put(deviceConnected, []byte{conn}))
	}
	list := append(dev(0, 0), dev(5, 1)...)
	got, err := parseDevices(list)
	if err != nil || len(got) != 2 || got[0] != (Device{0, false}) || got[1] != (Device{5, true}) {
		t.Fatalf("devices %+v, %v", got, err)
	}
}

// Without the nbd driver (this host, usually), Open says so plainly.
func TestOpenWithoutDriver(t *testing.T) {
	if _, err := os.Stat("/sys/module/nbd"); err == nil {
		t.Skip("this kernel has the nbd driver")
	}
	c, err := Open()
	if err == nil {
		c.Close()
		t.Skip("the nbd family resolved (module autoloaded)")
	}
	if !errors.Is(err, ErrNoDriver) {
		t.Fatalf("Open without the driver: %v, want ErrNoDriver", err)
	}
}

// The request path against the running kernel: generic netlink's own
// controller family is always there, with its fixed id.
func TestResolveControllerFamily(t *testing.T) {
	c, err := openFamily("nlctrl")
	if err != nil {
		t.Skipf("no generic netlink here: %v", err)
	}
	defer c.Close()
	if c.family != ctrlID {
		t.Fatalf("nlctrl resolved to %d, want %d", c.family, ctrlID)
	}
}

// Without CAP_SYS_ADMIN the kernel answers EPERM: the error says root.
func TestExplainPermission(t *testing.T) {
	err := explain("connect", unix.EPERM)
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "needs root") {
		t.Fatalf("EPERM: %v", err)
	}
	if err := explain("connect", unix.EBUSY); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("EBUSY lost: %v", err)
	}
}
