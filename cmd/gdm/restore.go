package main

import (
	"context"
	"fmt"
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
		return err
	}
	if err := checkUUID(s.UUID); err != nil {
		return err
	}
	if err := d.reserve(s.Name, s.UUID); err != nil {
		return err
	}
	defer d.unreserve(s.Name, s.UUID)
	m := d.newManaged(s)
	if err := d.restoreTables(m, s); err != nil {
		// Whatever opened is closed again; the device stays, broken.
		m.dev.Close()
		m.dev = d.newDevice(s)
		m.exp.Device = m.dev
		reason := err.Error()
		m.broken.Store(&reason)
	}
	d.mu.Lock()
	d.devices[s.Name] = m
	d.mu.Unlock()
	return nil
}

// restoreTables loads the saved live table (and makes it live), suspends
// the device if it was, and loads the saved inactive table.
func (d *daemon) restoreTables(m *managed, s deviceState) error {
	ctx := context.Background()
	if s.Live != "" {
		if err := m.dev.LoadText(s.Live); err != nil {
			return fmt.Errorf("live table: %w", err)
		}
		if err := m.dev.Resume(ctx, true); err != nil {
			return fmt.Errorf("live table: %w", err)
		}
	}
	if s.Suspended {
		if err := m.dev.Suspend(ctx, true); err != nil {
			return fmt.Errorf("suspend: %w", err)
		}
	}
	if s.Inactive != "" {
		if err := m.dev.LoadText(s.Inactive); err != nil {
			return fmt.Errorf("inactive table: %w", err)
		}
	}
	return nil
}
