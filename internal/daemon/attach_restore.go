package daemon

import (
	"errors"
	"fmt"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/internal/nbdnetlink"
	"golang.org/x/sys/unix"
)

// servedWait bounds a detach's wait for the server to let go of the
// kernel's connections once the kernel has disconnected them.
const servedWait = 10 * time.Second

// reattachAll runs at start, before any listener opens: each device the
// state says is attached gets new connections with RECONFIGURE, which the
// kernel takes in place of the dead ones of the daemon that ran before
// (within its dead-connection timeout, I/O waits for them).
func (d *daemon) reattachAll() {
	for _, m := range d.list() {
		if m.attached.Load() == nil {
			continue
		}
		m.opMu.Lock()
		if err := d.reattach(m); err != nil {
			d.log.Error("cannot reconnect an attached device", "device", m.name(), "err", err)
		}
		m.opMu.Unlock()
	}
}

// reattach reconnects one device. A kernel that no longer has the device
// configured (it gave up after the dead timeout, or rebooted) or that
// has it configured for another backend, or none (kernelHolds), has let it go:
// the attachment is then forgotten. Called with m.opMu held.
func (d *daemon) reattach(m *managed) error {
	a := m.attached.Load()
	if reason := m.broken.Load(); reason != nil {
		return fmt.Errorf("%w: %s (attachment kept; load and resume the device, then restart or detach)", errBroken, *reason)
	}
	if a.Index < 0 { // no kernel device to detach: it could not be undone
		return d.forgetAttachment(m, a, fmt.Errorf("%w: saved attachment has index %d", errBadAttach, a.Index))
	}
	if err := checkSaved(a); err != nil {
		return fmt.Errorf("%w (attachment kept; detach it)", err)
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
	ends, err := d.pairsFor().dialN(m.name(), a.Connections)
	if err != nil {
		return err
	}
	defer closeEnds(ends)
	err = k.Reconfigure(kernelConfig(a, ends))
	if errors.Is(err, unix.EINVAL) {
		return d.forgetAttachment(m, a, err)
	}
	if err != nil {
		return err
	}
	d.att.track(a.Index, ends)
	if _, err := d.att.links.set(m.name(), a.Device); err != nil {
		d.log.Warn("attached device has no link", "device", m.name(), "err", err)
	}
	d.log.Info("reconnected an attached device", "device", m.name(), "nbd", a.Device, "connections", len(ends))
	return nil
}

// forgetAttachment drops an attachment the kernel has no device for (why
// says how that is known). Called with m.opMu held.
func (d *daemon) forgetAttachment(m *managed, a *controlapi.Attachment, why error) error {
	d.log.Warn("the kernel no longer has this attachment; forgetting it", "device", m.name(), "nbd", a.Device, "err", why)
	d.att.links.drop(m.name(), a.Device)
	return d.saveAround(m, func(next *deviceState) { next.Attached = nil }, func() error { m.attached.Store(nil); return nil })
}

// detachForRemove refuses to remove an attached device, or with force
// detaches it first. Called with m.opMu held.
func (d *daemon) detachForRemove(m *managed, force bool) error {
	a := m.attached.Load()
	switch {
	case a == nil:
		return nil
	case !force:
		return fmt.Errorf("%w: attached as %s (gdm detach it first, or remove --force)", errBusy, a.Device)
	}
	return d.detachLocked(m)
}

// afterResume brings an attached device's kernel side up to date: a
// device that was broken at start (its connections not made again) gets
// them now, within the kernel's dead timeout; a new size is told to the
// kernel. Called with m.opMu held.
func (d *daemon) afterResume(m *managed) {
	if a := m.attached.Load(); a != nil && !d.att.connected(a.Index) {
		if err := d.reattach(m); err != nil {
			d.log.Error("cannot reconnect an attached device", "device", m.name(), "err", err)
		}
	}
	d.resizeAttached(m)
}

// resizeAttached tells the kernel the device's new size and block size
// after a resume changed them, so that a filesystem on it can grow. Called with m.opMu
// held; a failure is logged, the resume stands.
func (d *daemon) resizeAttached(m *managed) {
	a := m.attached.Load()
	size, bs := m.dev.Size(), kernelBlockSize(m)
	if a == nil || size == a.SizeBytes && bs == max(a.BlockSize, 512) {
		return
	}
	err := d.withKernel(func(k nbdKernel) error {
		if err := d.kernelHolds(k, a); err != nil {
			return err
		}
		return k.Reconfigure(nbdnetlink.Config{Index: a.Index, SizeBytes: uint64(size), BlockSize: uint64(bs), Backend: a.Backend})
	})
	if err != nil {
		d.log.Error("the kernel keeps the old size of an attached device", "device", m.name(), "nbd", a.Device, "err", err)
		return
	}
	next := *a
	next.SizeBytes, next.BlockSize = size, bs
	if err := d.saveAround(m, func(st *deviceState) { st.Attached = &next }, func() error { m.attached.Store(&next); return nil }); err != nil {
		d.log.Error("saving an attached device's size", "device", m.name(), "err", err)
	}
	d.log.Info("attached device resized", "device", m.name(), "nbd", a.Device, "bytes", size)
}

func (d *daemon) withKernel(f func(k nbdKernel) error) error {
	k, err := d.att.open()
	if err != nil {
		return err
	}
	defer k.Close()
	return f(k)
}

// track remembers when the server lets go of each of an attachment's
// connections. Connections of the index that the server has let go of
// already are forgotten here: a device reconnected at every repair, or an
// index the kernel hands out again, must not grow the list for good.
func (a *attacher) track(index int, ends []*kernelEnd) {
	a.mu.Lock()
	defer a.mu.Unlock()
	open := a.served[index][:0]
	for _, c := range a.served[index] {
		select {
		case <-c:
		default:
			open = append(open, c)
		}
	}
	for _, e := range ends {
		open = append(open, e.served)
	}
	a.served[index] = open
}

// untrack forgets the connections of an attach being undone, called while
// the kernel still holds index for it (so no other attach has it yet). An
// attachment the kernel dropped is not untracked: its index may be another
// device's by now, and track prunes it when the index is handed out again
// (so the map holds at most one entry per kernel index).
func (a *attacher) untrack(index int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.served, index)
}

// connected says whether the server still serves a connection of the
// attachment at index.
func (a *attacher) connected(index int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.served[index] {
		select {
		case <-c:
		default:
			return true
		}
	}
	return false
}

// awaitServed waits (bounded) until the server has closed every
// connection of the attachment at index.
func (a *attacher) awaitServed(index int) error {
	a.mu.Lock()
	chans := a.served[index]
	delete(a.served, index)
	a.mu.Unlock()
	timer := time.NewTimer(servedWait)
	defer timer.Stop()
	for _, c := range chans {
		select {
		case <-c:
		case <-timer.C:
			return fmt.Errorf("the kernel disconnected, but its connections are still open after %v", servedWait)
		}
	}
	return nil
}
