package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// deviceState is what survives a restart of the daemon.
type deviceState struct {
	Name      string `json:"name"`
	UUID      string `json:"uuid"`
	Live      string `json:"live_table,omitempty"`
	Inactive  string `json:"inactive_table,omitempty"`
	Suspended bool   `json:"suspended,omitempty"`
	ReadOnly  bool   `json:"read_only,omitempty"`
}

type stateDoc struct {
	Version int           `json:"version"`
	Devices []deviceState `json:"devices"`
}

const stateVersion = 1

// stateFile is the daemon's device definitions on disk: one JSON file,
// replaced atomically (write a temp file, fsync, rename, fsync the dir) on
// every change, so a crash leaves the old or the new file, never a mix.
type stateFile struct {
	dir string
}

func (s *stateFile) path() string { return filepath.Join(s.dir, "state.json") }

// load reads the definitions; a missing file is an empty daemon. A file that
// cannot be read or parsed is an error, and is left as it is.
func (s *stateFile) load() ([]deviceState, error) {
	b, err := os.ReadFile(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var doc stateDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("state: %s is not valid JSON (%v); it was left untouched: fix or move it away", s.path(), err)
	}
	if doc.Version != stateVersion {
		return nil, fmt.Errorf("state: %s has version %d, this gdm reads %d; it was left untouched", s.path(), doc.Version, stateVersion)
	}
	return doc.Devices, nil
}

func (s *stateFile) save(devs []deviceState) error {
	if devs == nil {
		devs = []deviceState{}
	}
	b, err := json.MarshalIndent(stateDoc{Version: stateVersion, Devices: devs}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, ".state-*.tmp")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("state: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("state: fsync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path()); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	dir, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("state: fsync dir: %w", err)
	}
	return nil
}

// restore brings back every device as it was. Any device that cannot be
// restored stops the daemon from starting, naming the device and why; the
// state file is not changed.
func (d *daemon) restore(devs []deviceState) error {
	for _, s := range devs {
		if err := d.restoreOne(s); err != nil {
			d.closeAll()
			return fmt.Errorf("state: restoring device %q from %s: %w (the state file was left untouched)", s.Name, d.state.path(), err)
		}
	}
	return nil
}

func (d *daemon) restoreOne(s deviceState) error {
	if !nameRE.MatchString(s.Name) {
		return errBadName
	}
	if _, ok := d.devices[s.Name]; ok {
		return errExists
	}
	m := d.newManaged(s.Name, s.UUID, s.ReadOnly)
	fail := func(what string, err error) error {
		m.dev.Close()
		return fmt.Errorf("%s table: %w", what, err)
	}
	if s.Live != "" {
		if err := m.dev.LoadText(s.Live); err != nil {
			return fail("live", err)
		}
		if err := m.dev.Resume(context.Background(), true); err != nil {
			return fail("live", err)
		}
	}
	if s.Suspended {
		if err := m.dev.Suspend(context.Background(), true); err != nil {
			return fail("live", err)
		}
	}
	if s.Inactive != "" {
		if err := m.dev.LoadText(s.Inactive); err != nil {
			return fail("inactive", err)
		}
	}
	d.devices[s.Name] = m
	return nil
}
