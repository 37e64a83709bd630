package daemon

import (
	"net"
	"os"
	"sync"
	"testing"

	"github.com/gdm-project/gdm/internal/nbdnetlink"
	"golang.org/x/sys/unix"
)

// fakeKernel stands for the kernel's NBD driver in the daemon's tests (the
// host has no nbd module; the guest test drives the real one): it keeps
// what CONNECT and RECONFIGURE sent, takes the sockets as the kernel does
// (its own descriptors), and lets a test do I/O over them as the kernel
// would.
type fakeKernel struct {
	mu         sync.Mutex
	noDriver   bool
	connectErr error
	// lostReply: CONNECT connects, then fails with this, as when the
	// kernel's answer is lost (a receive that failed or timed out).
	lostReply  error
	backendErr error // what reading /sys/block/nbdN/backend fails with
	devs       map[int]*fakeNBD
	reconfigs  []nbdnetlink.Config
}

type fakeNBD struct {
	cfg   nbdnetlink.Config
	conns []*nbdConn
}

// useFakeKernel makes every daemon started by the test use k, and keep
// its links in a temp dir, which it returns.
func useFakeKernel(t *testing.T, k *fakeKernel) string {
	t.Helper()
	oldOpen, oldPath := openKernel, linkPath
	dir := t.TempDir() + "/gdm"
	openKernel, linkPath = k.open, dir
	t.Cleanup(func() { openKernel, linkPath = oldOpen, oldPath })
	k.devs = map[int]*fakeNBD{}
	return dir
}

func (k *fakeKernel) open() (nbdKernel, error) {
	if k.noDriver {
		return nil, nbdnetlink.ErrNoDriver
	}
	return fakeHandle{k}, nil
}

type fakeHandle struct{ k *fakeKernel }

func (h fakeHandle) Close() error { return nil }

func (h fakeHandle) Connect(cfg nbdnetlink.Config) (int, error) {
	k := h.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.connectErr != nil {
		return 0, k.connectErr
	}
	idx := cfg.Index
	for idx < 0 {
		for i := 0; ; i++ {
			if k.devs[i] == nil {
				idx = i
				break
			}
		}
	}
	if k.devs[idx] != nil {
		return 0, unix.EBUSY
	}
	conns, err := takeSockets(cfg.Sockets)
	if err != nil {
		return 0, err
	}
	cfg.Index, cfg.Sockets = idx, nil
	k.devs[idx] = &fakeNBD{cfg: cfg, conns: conns}
	if k.lostReply != nil {
		return 0, k.lostReply
	}
	return idx, nil
}

// Status lists every device the fake has, each connected (index
// AnyIndex), or the one asked.
func (h fakeHandle) Status(index int) ([]nbdnetlink.Device, error) {
	k := h.k
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []nbdnetlink.Device
	for i := range k.devs {
		if index < 0 || i == index {
			out = append(out, nbdnetlink.Device{Index: i, Connected: true})
		}
	}
	return out, nil
}

func (h fakeHandle) Reconfigure(cfg nbdnetlink.Config) error {
	k := h.k
	k.mu.Lock()
	defer k.mu.Unlock()
	dev := k.devs[cfg.Index]
	// As the kernel does: the backend is checked only if the device
	// has one.
	if dev == nil || (dev.cfg.Backend != "" && cfg.Backend != dev.cfg.Backend) {
		return unix.EINVAL
	}
	k.reconfigs = append(k.reconfigs, cfg)
	if cfg.SizeBytes > 0 {
		dev.cfg.SizeBytes = cfg.SizeBytes
	}
	if cfg.BlockSize > 0 {
		dev.cfg.BlockSize = cfg.BlockSize
	}
	if len(cfg.Sockets) > 0 {
		conns, err := takeSockets(cfg.Sockets)
		if err != nil {
			return err
		}
		for _, c := range dev.conns {
			c.c.Close()
		}
		dev.conns = conns
	}
	return nil
}

func (h fakeHandle) Disconnect(index int) error {
	k := h.k
	k.mu.Lock()
	dev := k.devs[index]
	delete(k.devs, index)
	k.mu.Unlock()
	if dev == nil {
		return unix.EINVAL
	}
	// As the kernel does: a DISC on each, then the socket shut down,
	// without waiting for the server.
	for _, c := range dev.conns {
		c.c.Write(discRequest)
		c.c.Close()
	}
	return nil
}

// Backend is /sys/block/nbdN/backend: "" without a configured device.
func (h fakeHandle) Backend(index int) (string, error) {
	if h.k.backendErr != nil {
		return "", h.k.backendErr
	}
	if dev := h.k.dev(index); dev != nil {
		return dev.cfg.Backend, nil
	}
	return "", nil
}

// takeSockets dups the descriptors, as the kernel takes its reference.
func takeSockets(fds []int) ([]*nbdConn, error) {
	var out []*nbdConn
	for _, fd := range fds {
		nfd, err := unix.Dup(fd)
		if err != nil {
			return nil, err
		}
		f := os.NewFile(uintptr(nfd), "fake-kernel")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, &nbdConn{c: c})
	}
	return out, nil
}

// plant configures the device at index for another program, through
// netlink without a backend (as nbd-client does unless given one), in
// place of whatever was there.
func (k *fakeKernel) plant(index int) *fakeNBD {
	k.mu.Lock()
	defer k.mu.Unlock()
	dev := &fakeNBD{cfg: nbdnetlink.Config{Index: index, SizeBytes: 1 << 30}}
	k.devs[index] = dev
	return dev
}

// dev is the device at index (nil if none).
func (k *fakeKernel) dev(index int) *fakeNBD {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.devs[index]
}

// count is how many devices the fake has.
func (k *fakeKernel) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.devs)
}

// discRequest is NBD_CMD_DISC.
var discRequest = append([]byte{0x25, 0x60, 0x95, 0x13, 0, 0, 0, 2}, make([]byte, 20)...)
