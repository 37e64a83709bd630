package daemon

import (
	"context"
	"fmt"

	"github.com/gdm-project/gdm/pkg/table"
	"github.com/gdm-project/gdm/pkg/targets"
)

// restore brings back every device as it was saved. A device that cannot
// be restored (a backing file gone, a table the files no longer fit) does
// not stop the others: it is registered broken, with no table open and its
// reason shown by info, ls and the gdm_device_broken metric, and its state
// file is kept as it is until a verb repairs (load + resume) or removes
// it. Called before any listener is open.
func (d *daemon) restore(devs []deviceState) {
	for _, s := range devs {
		if err := d.restoreOne(s); err != nil {
			d.log.Error("device not restored", "device", s.Name, "file", d.state.fileOf(s.ID), "err", err)
		}
	}
}

func (d *daemon) restoreOne(s deviceState) error {
	if err := checkName(s.Name); err != nil {
		return err // it could not be addressed; its file stays for the operator
	}
	// An older gdm accepted any uuid, and the same one twice: such a
	// device comes up broken (visible, removable), not hidden.
	uuidErr, reserved := checkUUID(s.UUID), ""
	if uuidErr == nil {
		if uuidErr = d.reserve(s.Name, s.UUID); uuidErr == nil {
			reserved = s.UUID
		}
	}
	if uuidErr != nil {
		s.UUID = truncate(s.UUID, 64)
		if err := d.reserve(s.Name, ""); err != nil {
			return err
		}
	}
	defer d.unreserve(s.Name, reserved)
	m := d.newManaged(s)
	err := uuidErr
	var lost error
	if err == nil {
		lost, err = d.restoreTables(m, s)
	}
	if err == nil && lost != nil {
		// An inactive table is not what the device serves: it runs on, as
		// dm keeps no inactive table across a reboot at all; the state file
		// keeps naming the table for the operator.
		reason := lost.Error()
		m.lostInactive.Store(&reason)
		d.log.Error("inactive table not restored; the device runs on its live table", "device", s.Name, "err", lost)
	}
	if err != nil {
		// Whatever opened is closed again; the device stays, broken.
		m.dev.Close()
		d.retired.add(m.dev)
		m.dev = d.newDevice(s)
		m.exp.Device = m.dev
		reason := err.Error()
		m.broken.Store(&reason)
	} else {
		d.recordIdentities(m)
		d.externalize(m)
	}
	d.mu.Lock()
	d.register(m)
	d.mu.Unlock()
	return nil
}

// restoreTables loads the saved live table (and makes it live), suspends
// the device if it was, and loads the saved inactive table, each path
// required to name the file it named when the table was loaded. An
// inactive table that cannot be built is returned as lost, not as err:
// the device runs on without it.
func (d *daemon) restoreTables(m *managed, s deviceState) (lost, err error) {
	ctx := context.Background()
	load := func(what, file, inline string, expect map[string]targets.Identity) error {
		text, err := d.state.tableText(file, inline)
		var t *table.Table
		if err == nil {
			t, err = d.build(m, text, expect)
		}
		if err == nil {
			if err = m.dev.Load(t); err != nil {
				m.dev.Discard(t) // built, in no slot: as the load verb does
			}
		}
		if err != nil {
			return fmt.Errorf("%s table: %w", what, err)
		}
		return nil
	}
	if s.LiveFile != "" || s.Live != "" {
		if err := load("live", s.LiveFile, s.Live, s.LiveIdentities); err != nil {
			return nil, err
		}
		if err := m.dev.Resume(ctx, true); err != nil {
			return nil, fmt.Errorf("live table: %w", err)
		}
	}
	if s.Suspended {
		if err := m.dev.Suspend(ctx, true); err != nil {
			return nil, fmt.Errorf("suspend: %w", err)
		}
	}
	if s.InactiveFile != "" || s.Inactive != "" {
		return load("inactive", s.InactiveFile, s.Inactive, s.InactiveIdentities), nil
	}
	return nil, nil
}

// recordIdentities saves the identities of a restored device's backing
// files if its definition has none yet (one migrated from state.json, or
// written by an older gdm): from now on a replaced file is noticed.
func (d *daemon) recordIdentities(m *managed) {
	next := m.saved
	changed := false
	m.dev.View(table.Live, func(t *table.Table) error {
		if ids := t.Identities(); next.LiveIdentities == nil && len(ids) > 0 {
			next.LiveIdentities, changed = ids, true
		}
		return nil
	})
	m.dev.View(table.Inactive, func(t *table.Table) error {
		if ids := t.Identities(); next.InactiveIdentities == nil && len(ids) > 0 {
			next.InactiveIdentities, changed = ids, true
		}
		return nil
	})
	if changed {
		if err := d.commitLocked(m, next); err != nil {
			d.log.Warn("recording backing file identities", "device", m.name(), "err", err)
		}
	}
}

// externalize moves the big tables of a restored device whose state holds
// their text (written before table files) out to table files: from now
// on its verbs rewrite only a small JSON. On failure the text stays in
// the JSON, which is still read.
func (d *daemon) externalize(m *managed) {
	prev, next := m.saved, m.saved
	for _, s := range []struct {
		slot         table.Slot
		inline, file *string
	}{{table.Live, &next.Live, &next.LiveFile}, {table.Inactive, &next.Inactive, &next.InactiveFile}} {
		if len(*s.inline) <= inlineTableMax {
			continue
		}
		err := m.dev.View(s.slot, func(t *table.Table) error {
			f, err := d.state.writeTable(m.id, t)
			*s.inline, *s.file = "", f
			return err
		})
		if err != nil {
			d.log.Warn("moving a table out of the state file", "device", m.name(), "err", err)
			return
		}
	}
	if next.Live == prev.Live && next.Inactive == prev.Inactive {
		return
	}
	if err := d.commitLocked(m, next); err != nil {
		d.log.Warn("moving a table out of the state file", "device", m.name(), "err", err)
		return
	}
	d.state.dropTables(prev, next)
}
