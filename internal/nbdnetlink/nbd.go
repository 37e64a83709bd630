package nbdnetlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// AnyIndex asks CONNECT to pick a free device (or make one).
const AnyIndex = -1

// Server transmission flags the kernel acts on (linux/nbd.h).
const (
	FlagHasFlags  = 1 << 0
	FlagReadOnly  = 1 << 1
	FlagSendFlush = 1 << 2
	FlagSendFUA   = 1 << 3
	FlagSendTrim  = 1 << 5
	FlagMultiConn = 1 << 8
)

// Config is what CONNECT and RECONFIGURE send. Zero fields are left out:
// the kernel keeps (or defaults) what they set.
type Config struct {
	Index       int    // a device index, or AnyIndex (CONNECT only)
	Sockets     []int  // connected stream sockets, past the handshake
	SizeBytes   uint64 // the export's size
	BlockSize   uint64 // logical block size
	ServerFlags uint64 // the handshake's transmission flags (CONNECT only)
	// Timeout is how long a request may wait for its reply before the
	// kernel gives up on its connection; whole seconds.
	Timeout time.Duration
	// DeadTimeout is how long I/O waits for a dead connection to be
	// replaced (RECONFIGURE) before it fails; whole seconds.
	DeadTimeout time.Duration
	// Backend names the server side (/sys/block/nbdN/backend). Once a
	// device has one, the kernel refuses a RECONFIGURE that does not
	// name the same: a server cannot take over another's device.
	Backend string
}

func (cfg Config) attrs(connect bool) attrs {
	var a attrs
	if cfg.Index >= 0 {
		a = a.u32(attrIndex, uint32(cfg.Index))
	}
	if cfg.SizeBytes > 0 {
		a = a.u64(attrSizeBytes, cfg.SizeBytes)
	}
	if cfg.BlockSize > 0 {
		a = a.u64(attrBlockSize, cfg.BlockSize)
	}
	if cfg.Timeout > 0 {
		a = a.u64(attrTimeout, seconds(cfg.Timeout))
	}
	if cfg.DeadTimeout > 0 {
		a = a.u64(attrDeadTimeout, seconds(cfg.DeadTimeout))
	}
	if connect && cfg.ServerFlags != 0 {
		a = a.u64(attrServerFlags, cfg.ServerFlags)
	}
	if cfg.Backend != "" {
		a = a.str(attrBackend, cfg.Backend)
	}
	if len(cfg.Sockets) > 0 {
		var socks attrs
		for _, fd := range cfg.Sockets {
			socks = socks.nest(sockItem, attrs(nil).u32(sockFD, uint32(fd)))
		}
		a = a.nest(attrSockets, socks)
	}
	return a
}

// seconds rounds up: a timeout of 1.5s must not become 1s.
func seconds(d time.Duration) uint64 { return uint64((d + time.Second - 1) / time.Second) }

// Connect configures a device with cfg's sockets and starts it; it returns
// the index of the device the kernel used (the one it picked for AnyIndex).
func (c *Conn) Connect(cfg Config) (int, error) {
	if err := checkIndex(cfg.Index, true); err != nil {
		return 0, explain("connect", err)
	}
	reply, err := c.request(c.family, cmdConnect, familyVersion, cfg.attrs(true))
	if err != nil {
		return 0, explain("connect", err)
	}
	idx := reply[attrIndex]
	if len(idx) != 4 {
		return 0, errors.New("nbdnetlink: connect: the kernel's reply has no index")
	}
	return int(binary.NativeEndian.Uint32(idx)), nil
}

// Reconfigure changes a connected device: each socket replaces one dead
// connection (the kernel ignores sockets beyond those), a size resizes it.
func (c *Conn) Reconfigure(cfg Config) error {
	if cfg.Index < 0 {
		return errors.New("nbdnetlink: reconfigure needs a device index")
	}
	if err := checkIndex(cfg.Index, false); err != nil {
		return explain("reconfigure", err)
	}
	_, err := c.request(c.family, cmdReconfigure, familyVersion, cfg.attrs(false))
	return explain("reconfigure", err)
}

// Disconnect asks the kernel to end the device's connections (it sends
// NBD_CMD_DISC on each) and release the device.
func (c *Conn) Disconnect(index int) error {
	if err := checkIndex(index, false); err != nil {
		return explain("disconnect", err)
	}
	_, err := c.request(c.family, cmdDisconnect, familyVersion, attrs(nil).u32(attrIndex, uint32(index)))
	return explain("disconnect", err)
}

// sysBlock is where the kernel shows its block devices (tests replace it).
var sysBlock = "/sys/block"

// Backend is the backend the kernel records for the device at index
// (/sys/block/nbdN/backend): "" for a device that is not configured, was
// configured without one, or does not exist (an index the kernel cannot
// have included). The kernel checks the backend on RECONFIGURE only if
// the device has one, and never on DISCONNECT: a caller that means to
// change or end only its own device reads it first.
func (c *Conn) Backend(index int) (string, error) {
	if checkIndex(index, false) != nil {
		return "", nil
	}
	b, err := os.ReadFile(sysBlock + "/nbd" + strconv.Itoa(index) + "/backend")
	if errors.Is(err, os.ErrNotExist) {
		// No sysfs at all says nothing about the device.
		if _, serr := os.Stat(sysBlock); serr != nil {
			return "", fmt.Errorf("nbdnetlink: backend of nbd%d: %w", index, serr)
		}
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("nbdnetlink: backend of nbd%d: %w", index, err)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// Device is one device of a STATUS reply.
type Device struct {
	Index     int
	Connected bool
}

// Status lists the kernel's NBD devices (index AnyIndex) or one of them.
func (c *Conn) Status(index int) ([]Device, error) {
	if err := checkIndex(index, index < 0); err != nil {
		return nil, explain("status", err)
	}
	var a attrs
	if index >= 0 {
		a = a.u32(attrIndex, uint32(index))
	}
	reply, err := c.request(c.family, cmdStatus, familyVersion, a)
	if err != nil {
		return nil, explain("status", err)
	}
	return parseDevices(reply[attrDeviceList])
}

// checkIndex refuses an index the kernel would not read as asked: the
// attribute is a u32 the kernel takes as an int, so 1<<32 would be sent
// as 0 (another device) and 1<<31 read as negative. AnyIndex passes
// where any is allowed.
func checkIndex(index int, anyOK bool) error {
	if (index == AnyIndex && anyOK) || (index >= 0 && index <= math.MaxInt32) {
		return nil
	}
	return fmt.Errorf("%w, not %d", ErrIndex, index)
}

func parseDevices(list []byte) ([]Device, error) {
	var out []Device
	err := eachAttr(list, func(typ uint16, item []byte) error {
		if typ != deviceItem {
			return nil
		}
		f, err := parseAttrs(item)
		if err != nil {
			return err
		}
		if len(f[deviceIndex]) != 4 {
			return fmt.Errorf("nbdnetlink: status: a device without an index")
		}
		d := Device{Index: int(binary.NativeEndian.Uint32(f[deviceIndex]))}
		d.Connected = len(f[deviceConnected]) == 1 && f[deviceConnected][0] != 0
		out = append(out, d)
		return nil
	})
	return out, err
}

func explain(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("nbdnetlink: %s: %w", op, ErrPermission)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("nbdnetlink: %s: the NBD device is in use: %w", op, err)
	}
	return fmt.Errorf("nbdnetlink: %s: %w", op, err)
}
