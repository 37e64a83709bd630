package daemon

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/internal/nbdnetlink"
	"github.com/gdm-project/gdm/pkg/nbdserver"
)

// nbdKernel is the kernel's NBD driver as the daemon drives it
// (nbdnetlink.Conn; a fake in tests, the host having no nbd module).
type nbdKernel interface {
	Connect(cfg nbdnetlink.Config) (int, error)
	Reconfigure(cfg nbdnetlink.Config) error
	Disconnect(index int) error
	Backend(index int) (string, error)
	Status(index int) ([]nbdnetlink.Device, error)
	Close() error
}

// attacher is what the daemon needs to attach devices to the kernel.
type attacher struct {
	open  func() (nbdKernel, error) // a netlink socket per verb
	links linkDir
	pairs *pairListener
	srv   *nbdserver.Server // serves pairs only (attach_export.go)
	serve sync.Once         // the NBD server takes pairs from the first attach on

	mu     sync.Mutex
	served map[int][]chan struct{} // by kernel index: closed as the server lets go of each connection
}

// openKernel and linkPath are the kernel and the link directory every new
// daemon uses; tests replace them (the host that runs them has no nbd
// module, nor a /dev to write in).
var (
	openKernel = func() (nbdKernel, error) { return nbdnetlink.Open() }
	linkPath   = defaultLinkDir
)

func newAttacher(d *daemon) *attacher {
	return &attacher{
		// Every pair looks like one client: the per-client bound would
		// cap the kernel's connections over all attached devices.
		srv: &nbdserver.Server{Exports: attachExports{d}, Log: d.log.With("component", "nbd-attach"),
			MaxConnsPerClient: -1},
		open:   openKernel,
		links:  linkDir{path: linkPath},
		pairs:  newPairListener(),
		served: map[int][]chan struct{}{},
	}
}

// Defaults and bounds of an attach.
const (
	defaultAttachConns   = 1
	maxAttachConns       = 64
	defaultAttachTimeout = 30 // seconds
	// defaultDeadTimeout is how long the kernel holds I/O for a
	// restarting daemon: long enough for a restart, short enough that a
	// daemon gone for good fails the I/O rather than hanging it.
	defaultDeadTimeout = 120 // seconds
	// maxAttachTimeout bounds both timeouts: the kernel keeps a
	// request's as a 32-bit count of ticks (seconds times HZ, up to
	// 1000), so a longer one wrapped to a short one (50 days came out as
	// 7h at HZ=1000), and a dead timeout past 292 years overflowed the
	// daemon's time.Duration.
	maxAttachTimeout = math.MaxUint32 / 1000 // seconds, about 49 days
)

var errNotAttached = errors.New("not attached")

// pairsFor starts the NBD server's loop over the daemon's own pairs once.
func (d *daemon) pairsFor() *pairListener {
	d.att.serve.Do(func() { go d.att.srv.Serve(d.att.pairs) })
	return d.att.pairs
}

// attach connects the kernel's NBD driver to the device: the handshakes
// first, then CONNECT, then the link, then the state file; each step that
// fails undoes those before it, so a failed attach leaves nothing.
func (d *daemon) attach(name string, req controlapi.AttachReq) (*managed, error) {
	if err := checkAttachReq(&req); err != nil {
		return nil, err
	}
	return d.onDevice(name, func(m *managed) error {
		if a := m.attached.Load(); a != nil {
			return fmt.Errorf("%w: already attached as %s (two kernel devices would cache one device apart)", errBusy, a.Device)
		}
		if reason := m.broken.Load(); reason != nil {
			return fmt.Errorf("%w: %s", errBroken, *reason)
		}
		if !m.dev.HasLive() {
			return fmt.Errorf("device %s has no live table", name)
		}
		k, err := d.att.open()
		if err != nil {
			return err
		}
		defer k.Close()
		return d.attachLocked(m, k, req)
	})
}

func (d *daemon) attachLocked(m *managed, k nbdKernel, req controlapi.AttachReq) error {
	ends, err := d.pairsFor().dialN(m.name(), req.Connections)
	if err != nil {
		return err
	}
	defer closeEnds(ends)
	a := &controlapi.Attachment{Connections: req.Connections, TimeoutSeconds: req.TimeoutSeconds,
		DeadTimeoutSeconds: req.DeadTimeoutSeconds, ReadOnly: req.ReadOnly, SizeBytes: m.dev.Size(), BlockSize: kernelBlockSize(m),
		Backend: "gdm:" + m.uuid}
	cfg := kernelConfig(a, ends)
	cfg.Index = nbdnetlink.AnyIndex
	if req.Index != nil {
		cfg.Index = *req.Index
	}
	cfg.ServerFlags = uint64(ends[0].flags)
	if req.ReadOnly {
		cfg.ServerFlags |= nbdnetlink.FlagReadOnly
	}
	if a.Index, err = k.Connect(cfg); err != nil {
		return errors.Join(err, d.undoLostConnect(k, a.Backend))
	}
	a.Device = "/dev/nbd" + strconv.Itoa(a.Index)
	d.att.track(a.Index, ends)
	if a.Link, err = d.att.links.set(m.name(), a.Device); err != nil {
		return errors.Join(err, d.undoAttach(k, a.Index))
	}
	err = d.saveAround(m, func(next *deviceState) { next.Attached = a }, func() error { m.attached.Store(a); return nil })
	if err != nil {
		d.att.links.drop(m.name(), a.Device)
		return errors.Join(err, d.undoAttach(k, a.Index))
	}
	d.log.Info("attached", "device", m.name(), "nbd", a.Device, "connections", a.Connections)
	return nil
}

// kernelBlockSize is the logical block size the kernel's /dev/nbdN is
// given: the live table's (crypt's sector_size, a backing device's
// sectors), as dm gives its device its table's, so that the kernel sends
// no I/O the table refuses. The kernel takes 512 to a page; a table that
// asks more (a remote export's minimum past 4 KiB) gets a page, and its
// smaller I/O fails as it would from any NBD client.
func kernelBlockSize(m *managed) int64 {
	return int64(min(m.dev.LogicalBlockSize(), os.Getpagesize()))
}

// undoAttach disconnects a kernel device this attach connected and then
// could not record, and forgets its connections.
func (d *daemon) undoAttach(k nbdKernel, index int) error {
	d.att.untrack(index)
	if err := k.Disconnect(index); err != nil {
		return fmt.Errorf("undoing the attach: %w", err)
	}
	return nil
}

// undoLostConnect disconnects the kernel device a failed CONNECT may have
// connected all the same: the kernel connects before it answers, so an
// answer lost on the way (a receive that failed or timed out) leaves a
// device the daemon does not know of, served over its pairs for good. It
// is found by its backend, the device's own ("gdm:" and its uuid), which
// no other kernel device carries while this one is not attached. A CONNECT
// the kernel refused finds none, and says nothing more.
func (d *daemon) undoLostConnect(k nbdKernel, backend string) error {
	devs, err := k.Status(nbdnetlink.AnyIndex)
	if err != nil {
		return fmt.Errorf("looking for a device the failed connect left: %w", err)
	}
	var errs []error
	for _, dev := range devs {
		if !dev.Connected {
			continue
		}
		if b, err := k.Backend(dev.Index); err != nil || b != backend {
			continue
		}
		d.log.Warn("attach: disconnecting the device a failed connect left", "nbd", dev.Index, "backend", backend)
		if err := k.Disconnect(dev.Index); err != nil {
			errs = append(errs, fmt.Errorf("disconnecting nbd%d, which the failed connect left: %w", dev.Index, err))
		}
	}
	return errors.Join(errs...)
}

// kernelConfig is what CONNECT and RECONFIGURE both send for a.
func kernelConfig(a *controlapi.Attachment, ends []*kernelEnd) nbdnetlink.Config {
	cfg := nbdnetlink.Config{Index: a.Index, SizeBytes: uint64(a.SizeBytes), BlockSize: uint64(max(a.BlockSize, 512)),
		Timeout: time.Duration(a.TimeoutSeconds) * time.Second, DeadTimeout: time.Duration(a.DeadTimeoutSeconds) * time.Second,
		Backend: a.Backend}
	for _, e := range ends {
		cfg.Sockets = append(cfg.Sockets, e.fd())
	}
	return cfg
}

func checkAttachReq(req *controlapi.AttachReq) error {
	if req.Connections == 0 {
		req.Connections = defaultAttachConns
	}
	if req.TimeoutSeconds == 0 {
		req.TimeoutSeconds = defaultAttachTimeout
	}
	if req.DeadTimeoutSeconds == 0 {
		req.DeadTimeoutSeconds = defaultDeadTimeout
	}
	switch {
	case req.Connections < 1 || req.Connections > maxAttachConns:
		return fmt.Errorf("%w: connections must be 1 to %d", errBadAttach, maxAttachConns)
	case req.Index != nil && (*req.Index < 0 || *req.Index > math.MaxInt32):
		return fmt.Errorf("%w: the index must be 0 to %d", errBadAttach, math.MaxInt32)
	case req.TimeoutSeconds < 0 || req.DeadTimeoutSeconds < 0:
		return fmt.Errorf("%w: a negative timeout", errBadAttach)
	case req.TimeoutSeconds > maxAttachTimeout || req.DeadTimeoutSeconds > maxAttachTimeout:
		return fmt.Errorf("%w: timeouts must be at most %ds", errBadAttach, maxAttachTimeout)
	}
	return nil
}

var errBadAttach = errors.New("bad attach request")

var errNotHeld = errors.New("the kernel's device there is not this attachment's")

// kernelHolds checks that the kernel's device at a.Index is still a's: the
// kernel names a's backend for it. The kernel checks the backend on a
// RECONFIGURE only if the device has one, and never on a DISCONNECT, so
// once it has let the index go (an nbd-client -d while gdm was down, a
// reboot) another program's device there, or another attachment's, must
// be neither reconfigured nor disconnected in a's name.
func (d *daemon) kernelHolds(k nbdKernel, a *controlapi.Attachment) error {
	b, err := k.Backend(a.Index)
	switch {
	case err != nil:
		return err
	case a.Backend == "" || b != a.Backend:
		return fmt.Errorf("%w: %s has backend %q, not %q", errNotHeld, a.Device, b, a.Backend)
	}
	return nil
}

// detach disconnects the kernel device of target (a device name, or the
// /dev/nbdN or /dev/gdm/NAME it is attached as) and forgets it.
func (d *daemon) detach(target string) (*managed, error) {
	name, err := d.attachedName(target)
	if err != nil {
		return nil, err
	}
	return d.detachAs(name, target)
}

// detachAs detaches device name, which target named when it was looked
// up. By the time the device's verb lock is held, it may have been
// detached and attached again elsewhere, or renamed and its name given to
// another: a /dev/nbdN or link target must still be its attachment's, or
// another kernel device than the one asked for would be disconnected.
func (d *daemon) detachAs(name, target string) (*managed, error) {
	return d.onDevice(name, func(m *managed) error {
		if a := m.attached.Load(); a != nil && target != name && a.Device != target && a.Link != target {
			return fmt.Errorf("%w: no device is attached as %s", errNoDevice, target)
		}
		return d.detachLocked(m)
	})
}

// attachedName resolves a detach's target to a device name.
func (d *daemon) attachedName(target string) (string, error) {
	if !strings.Contains(target, "/") { // names have no slash
		return target, nil
	}
	for _, m := range d.list() {
		if a := m.attached.Load(); a != nil && (a.Device == target || a.Link == target) {
			return m.name(), nil
		}
	}
	return "", fmt.Errorf("%w: no device is attached as %s", errNoDevice, target)
}

// detachLocked writes ahead that the device is detached, then disconnects
// the kernel device and forgets it. If the state cannot be written, the
// kernel device is left connected; if the kernel refuses, the attachment
// stays recorded: either way nothing changed and detach can be tried
// again. Never the other way round: an index the kernel has let go may be
// given to another attach, and a retried detach must not disconnect it.
// For the same reason an attachment the kernel no longer holds
// (kernelHolds) is only forgotten.
func (d *daemon) detachLocked(m *managed) error {
	a := m.attached.Load()
	if a == nil {
		return fmt.Errorf("%s: %w", m.name(), errNotAttached)
	}
	k, err := d.att.open()
	if err != nil {
		return err
	}
	defer k.Close()
	if err := d.kernelHolds(k, a); errors.Is(err, errNotHeld) {
		return d.forgetAttachment(m, a, err)
	} else if err != nil {
		return err
	}
	err = d.saveAround(m, func(next *deviceState) { next.Attached = nil }, func() error { return k.Disconnect(a.Index) })
	if err != nil {
		return err
	}
	m.attached.Store(nil)
	if err := d.att.awaitServed(a.Index); err != nil {
		d.log.Warn("detach", "device", m.name(), "err", err)
	}
	d.att.links.drop(m.name(), a.Device)
	d.log.Info("detached", "device", m.name(), "nbd", a.Device)
	return nil
}

// renameAttached moves an attached device's link to its new name. Called
// with m.opMu held, after the rename; a failure is logged, the rename
// stands (the kernel device is the same).
func (d *daemon) renameAttached(m *managed, old string) {
	a := m.attached.Load()
	if a == nil {
		return
	}
	next := *a
	link, err := d.att.links.set(m.name(), a.Device)
	if err != nil {
		d.log.Warn("attached device renamed without a link", "device", m.name(), "err", err)
	}
	d.att.links.drop(old, a.Device)
	next.Link = link
	if err := d.saveAround(m, func(st *deviceState) { st.Attached = &next }, func() error { m.attached.Store(&next); return nil }); err != nil {
		d.log.Error("saving an attached device's link", "device", m.name(), "err", err)
	}
}
