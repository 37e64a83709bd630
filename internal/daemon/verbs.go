package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/gdm-project/gdm/pkg/table"
	"github.com/gdm-project/gdm/pkg/targets"
)

// The daemon's verbs: each takes its device's lock, writes the device's
// state file before (or, for resume and suspend, around) its change in
// memory, and so happens entirely or not at all.

// build parses and opens a table for m, with no registry lock held. With
// expect, each path must still name the file it named then.
func (d *daemon) build(m *managed, text string, expect map[string]targets.Identity) (*table.Table, error) {
	if h := d.buildHook; h != nil {
		h(m.name())
	}
	opts := d.open
	opts.Expect = expect
	t, err := m.dev.Build(text, opts)
	if err == nil && t.Len() >= bigTableTargets {
		// Building a million targets leaves a few hundred MB of garbage
		// that the runtime would hand back to the OS only slowly: the
		// daemon's RSS would stay that much above its live heap.
		go debug.FreeOSMemory()
	}
	return t, err
}

// bigTableTargets is the size of a table after whose build the daemon
// gives its garbage back to the OS at once.
const bigTableTargets = 100_000

// commit makes next the device's persisted definition. Every verb writes
// its state file before (or, for resume and suspend, around) its change in
// memory, so that either both happen or neither does.
func (d *daemon) commitLocked(m *managed, next deviceState) error {
	if err := d.state.save(next); err != nil {
		d.log.Error("saving state", "device", next.Name, "err", err)
		return d.undoSave(m, err)
	}
	m.saved = next
	return nil
}

// undoSave answers a state change of m that failed. A change that failed
// after it was made (errNotDurable: the new file renamed into place, or
// the old one removed, then the directory fsync failed) is undone by
// saving m's definition in force again, so that "nothing was changed"
// holds on disk too; if even that fails, the error says that a restart
// may find the refused change.
func (d *daemon) undoSave(m *managed, err error) error {
	if perr := d.putBack(m, err); perr != nil {
		return perr
	}
	return fmt.Errorf("state not saved, nothing was changed: %w", err)
}

// putBack saves m's definition in force again after a change that failed
// once made (errNotDurable), and says so if it cannot.
func (d *daemon) putBack(m *managed, err error) error {
	if !errors.Is(err, errNotDurable) {
		return nil
	}
	if rerr := d.state.save(m.saved); rerr != nil {
		d.log.Error("state may keep a refused change", "device", m.name(), "err", rerr)
		return fmt.Errorf("state not saved, and its file could not be put back: the device is unchanged, but a restart may find the refused change; repeat the verb, or undo it, once the state directory works: %w", err)
	}
	return nil
}

// create makes a device whose table goes live at once. A table without
// a target line (empty, or blank lines and comments) makes the device
// without a table, as dmsetup create does: libdm creates the device and
// loads nothing when it read no targets (seen in the guest's dmsetup).
// A load of such a table is refused, as the kernel refuses one.
func (d *daemon) create(name, text, uuid string, readOnly bool) (*managed, error) {
	if !table.HasTargets(text) {
		return d.createEmpty(name, "", uuid, readOnly)
	}
	return d.newDeviceWith(name, uuid, readOnly, func(m *managed) error {
		if err := d.loadLocked(m, text, true); err != nil {
			return err
		}
		if err := m.dev.Resume(context.Background(), true); err != nil {
			m.dev.Close()
			return err
		}
		return nil
	})
}

// createEmpty makes a device without a table, as dmsetup create
// --notable: it exists (info, rename, remove) and serves no NBD client
// until a table is loaded and resumed. text must be empty.
func (d *daemon) createEmpty(name, text, uuid string, readOnly bool) (*managed, error) {
	if text != "" {
		return nil, errTableWithNoTable
	}
	return d.newDeviceWith(name, uuid, readOnly, func(m *managed) error { return d.commitLocked(m, m.saved) })
}

// newDeviceWith makes a device of that name (and uuid, or a random one),
// set up by setup under its verb lock and registered only if setup
// succeeds; on failure whatever setup saved is removed.
func (d *daemon) newDeviceWith(name, uuid string, readOnly bool, setup func(m *managed) error) (*managed, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := checkUUID(uuid); err != nil {
		return nil, err
	}
	if uuid == "" {
		uuid = newUUID()
	}
	if err := d.reserve(name, uuid); err != nil {
		return nil, err
	}
	defer d.unreserve(name, uuid)
	m := d.newManaged(deviceState{ID: newID(), Name: name, UUID: uuid, ReadOnly: readOnly})
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if err := setup(m); err != nil {
		return nil, d.undoCreate(m, err)
	}
	d.mu.Lock()
	d.register(m)
	d.mu.Unlock()
	return m, nil
}

// undoCreate removes the state file, if any, of a create that failed.
func (d *daemon) undoCreate(m *managed, err error) error {
	if _, serr := os.Stat(d.state.fileOf(m.id)); serr != nil {
		return err // never written
	}
	if rerr := d.state.remove(m.id); rerr != nil {
		d.log.Error("state keeps a device whose create failed", "device", m.name(), "err", rerr)
		return err
	}
	d.state.dropTables(m.saved, deviceState{})
	return err
}

// load puts a table in the device's inactive slot. ctx is the request's:
// a load waiting for the device's verb lock stops when its client hangs
// up (so does clear, rename and remove), rather than act later on a
// device its client was told nothing happened to.
func (d *daemon) load(ctx context.Context, name, text string) (*managed, error) {
	if text == "" {
		return nil, errNoTable
	}
	return d.onDeviceContext(ctx, name, func(m *managed) error { return d.loadLocked(m, text, false) })
}

// loadLocked builds a table from text and puts it in m's inactive slot,
// recording it in m's state first: as its live table (create, which
// resumes it next) or as its inactive one (load).
func (d *daemon) loadLocked(m *managed, text string, asLive bool) error {
	var early *tableFile // on the other core, while this one builds
	if len(text) > inlineTableMax {
		early = d.state.startTableFile(m.id, text)
	}
	t, err := d.build(m, text, nil)
	if err != nil {
		if early != nil {
			early.drop()
		}
		return err
	}
	file, saved, err := d.state.saveTable(m.id, t, early)
	if err != nil {
		d.log.Error("saving a table", "device", m.name(), "err", err)
		err = fmt.Errorf("state not saved, nothing was changed: %w", err)
	} else {
		err = d.saveAround(m, func(next *deviceState) {
			if asLive {
				next.LiveFile, next.Live, next.LiveIdentities = file, saved, t.Identities()
			} else {
				next.InactiveFile, next.Inactive, next.InactiveIdentities = file, saved, t.Identities()
			}
		}, func() error { return m.dev.Load(t) }) // Load fails only on a removed device, which opMu rules out
	}
	if err != nil {
		m.dev.Discard(t)
		return err
	}
	if !asLive {
		m.lostInactive.Store(nil) // replaced
	}
	return nil
}

// onDevice runs verb on the named device under the device's verb lock and
// returns the device it acted on: the get-op-save sequence of every verb
// on an existing device, whose op and save are verb's (with saveAround).
func (d *daemon) onDevice(name string, verb func(m *managed) error) (*managed, error) {
	return d.onDeviceContext(context.Background(), name, verb)
}

// onDeviceContext is onDevice for a verb with a deadline or a client that
// may hang up: its wait for the device's verb lock ends with ctx.
func (d *daemon) onDeviceContext(ctx context.Context, name string, verb func(m *managed) error) (*managed, error) {
	m, err := d.lockDeviceContext(ctx, name)
	if err != nil {
		return nil, err
	}
	defer m.opMu.Unlock()
	if err := verb(m); err != nil {
		return nil, err
	}
	return m, nil
}

// saveAround persists the device's definition as edit changes it, runs op
// (the change in memory), and on op's failure persists the previous
// definition again: the state file says the verb happened only if it did.
// The table files only the replaced definition named are removed last,
// when the definition that no longer names them is durable and in force.
// Called with m.opMu held.
func (d *daemon) saveAround(m *managed, edit func(next *deviceState), op func() error) error {
	prev, next := m.saved, m.saved
	edit(&next)
	if err := d.commitLocked(m, next); err != nil {
		return err // a table file written for next is swept at the next start
	}
	if err := op(); err != nil {
		if rerr := d.saveBack(m, prev); rerr != nil {
			d.log.Error("state says the failed verb happened; it did not", "device", m.name(), "err", rerr)
			return fmt.Errorf("%w (and the state file could not be put back: a restart may find the refused change until the next verb on the device saves it: %v)", err, rerr)
		}
		d.state.dropTables(next, prev)
		return err
	}
	d.state.dropTables(prev, next)
	return nil
}

// saveBack saves prev, m's definition in force again after a verb's
// change in memory failed. m.saved becomes prev first, whatever the save
// does: it is what the device is, so a retry (after a rename whose fsync
// failed) and the next verb's save write prev. Before, m.saved stayed the
// refused definition, and both wrote that: a suspend refused when its
// flush failed left the state file saying suspended, and a restart
// suspended the device.
func (d *daemon) saveBack(m *managed, prev deviceState) error {
	m.saved = prev
	err := d.state.save(prev)
	if errors.Is(err, errNotDurable) {
		err = d.state.save(prev) // prev is renamed in; this fsync makes it durable
	}
	if err != nil {
		d.log.Error("saving state", "device", m.name(), "err", err)
	}
	return err
}

func (d *daemon) resume(ctx context.Context, name string, live bool) (*managed, error) {
	return d.onDeviceContext(ctx, name, func(m *managed) error { return d.resumeLocked(ctx, m, live) })
}

func (d *daemon) resumeLocked(ctx context.Context, m *managed, live bool) error {
	if reason := m.broken.Load(); reason != nil && !m.dev.HasInactive() {
		return fmt.Errorf("%w (%s): load a table, then resume", errBroken, *reason)
	}
	if lost := m.lostInactive.Load(); lost != nil {
		// Resuming would run on with the live table while the state file
		// names an inactive one the user may think went live.
		return fmt.Errorf("%w: the saved inactive table could not be restored at start (%s): load it again, or clear it", errBroken, *lost)
	}
	err := d.saveAround(m, func(next *deviceState) {
		if m.dev.HasInactive() {
			next.Live, next.Inactive = next.Inactive, ""
			next.LiveFile, next.InactiveFile = next.InactiveFile, ""
			next.LiveIdentities, next.InactiveIdentities = next.InactiveIdentities, nil
		}
		next.Suspended = false
	}, func() error { return m.dev.Resume(ctx, live) })
	if err == nil && m.broken.Swap(nil) != nil {
		d.log.Info("broken device repaired", "device", m.name())
	}
	if err == nil {
		d.afterResume(m)
	}
	return err
}

func (d *daemon) suspend(ctx context.Context, name string, noflush bool) (*managed, error) {
	return d.onDeviceContext(ctx, name, func(m *managed) error {
		if reason := m.broken.Load(); reason != nil {
			return fmt.Errorf("%w: %s", errBroken, *reason)
		}
		return d.saveAround(m, func(next *deviceState) { next.Suspended = true },
			func() error { return m.dev.Suspend(ctx, noflush) })
	})
}

func (d *daemon) clear(ctx context.Context, name string) (*managed, error) {
	return d.onDeviceContext(ctx, name, d.clearLocked)
}

func (d *daemon) clearLocked(m *managed) error {
	err := d.saveAround(m, func(next *deviceState) {
		next.Inactive, next.InactiveFile, next.InactiveIdentities = "", "", nil
	}, m.dev.Clear)
	if err == nil {
		m.lostInactive.Store(nil)
	}
	return err
}

// remove takes the device out of the catalogue, ends its connections when
// forced, and destroys its tables: when it returns, no backing file of the
// device is open and the name is free. If its state file cannot be
// removed, nothing is: the device stays as it was.
func (d *daemon) remove(ctx context.Context, name string, force bool) error {
	_, err := d.onDeviceContext(ctx, name, func(m *managed) error { return d.removeLocked(m, force) })
	return err
}

func (d *daemon) removeLocked(m *managed, force bool) error {
	name := m.name()
	attached := m.attached.Load() != nil
	if err := d.detachForRemove(m, force); err != nil {
		return err
	}
	d.mu.Lock()
	if m.conns.Load() > 0 && !force {
		d.mu.Unlock()
		return errBusy
	}
	m.gone.Store(true) // under mu: Open checks it there, so no new connection
	d.mu.Unlock()
	if err := d.state.remove(m.id); err != nil {
		m.gone.Store(false)
		d.log.Error("removing state", "device", name, "err", err)
		if attached { // the detach was saved on its own
			if perr := d.putBack(m, err); perr != nil {
				return fmt.Errorf("detached, but not removed: %w", perr)
			}
			return fmt.Errorf("detached, but not removed: state not saved: %w", err)
		}
		return d.undoSave(m, err)
	}
	d.state.dropTables(m.saved, deviceState{})
	d.retired.closeBegins(m.dev)
	d.mu.Lock()
	d.unregister(m)
	d.mu.Unlock()
	if force {
		if n := d.nbd.Disconnect(m.exp); n > 0 {
			d.log.Info("remove --force disconnected clients", "device", name, "connections", n)
		}
	}
	// Close fails I/O waiting on a suspended device and waits for in-flight
	// I/O to drain before closing the backing files.
	if cerr := m.dev.Close(); cerr != nil {
		d.log.Warn("closing device", "device", name, "err", cerr)
	}
	d.retired.add(m.dev)
	return nil
}

func (d *daemon) rename(ctx context.Context, old, new string) (*managed, error) {
	if err := checkName(new); err != nil {
		return nil, err
	}
	return d.onDeviceContext(ctx, old, func(m *managed) error {
		if err := d.reserve(new, ""); err != nil {
			return err
		}
		defer d.unreserve(new, "")
		// Connections keep their Export, so they are not disturbed; the
		// device's errors and log lines name it anew.
		err := d.saveAround(m, func(next *deviceState) { next.Name = new }, func() error {
			d.mu.Lock()
			defer d.mu.Unlock()
			delete(d.devices, old)
			d.devices[new] = m
			m.dev.Rename(new)
			return nil
		})
		if err == nil {
			d.renameAttached(m, old)
		}
		return err
	})
}
