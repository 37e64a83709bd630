package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/pkg/targets"
)

// deviceState is what survives a restart of the daemon: one device's
// definition, in a file of its own.
type deviceState struct {
	Version int    `json:"version"`
	ID      string `json:"id"` // names the file; never changes, not even on rename
	Name    string `json:"name"`
	UUID    string `json:"uuid"`
	// The tables' files (state_tables.go), or, for a small table (and in
	// state written before table files), the table's text itself.
	LiveFile     string `json:"live_table_file,omitempty"`
	InactiveFile string `json:"inactive_table_file,omitempty"`
	Live         string `json:"live_table,omitempty"`
	Inactive     string `json:"inactive_table,omitempty"`
	Suspended    bool   `json:"suspended,omitempty"`
	ReadOnly     bool   `json:"read_only,omitempty"`
	// The identity of each backing path of the live and inactive tables
	// when they were loaded: at restart a path that names another file
	// now (replaced, or swapped for a symlink) is refused, and the device
	// comes up broken.
	LiveIdentities     map[string]targets.Identity `json:"live_identities,omitempty"`
	InactiveIdentities map[string]targets.Identity `json:"inactive_identities,omitempty"`
	// Attached is the kernel NBD device it is attached as (attach.go),
	// reconnected at restart.
	Attached *controlapi.Attachment `json:"attached,omitempty"`
}

// legacyDoc is the single state.json of gdm before per-device files.
type legacyDoc struct {
	Version int           `json:"version"`
	Devices []deviceState `json:"devices"`
}

const (
	stateVersion  = 2
	legacyVersion = 1
	tmpPrefix     = ".tmp-"
)

// stateStore keeps each device's definition in its own file under
// <state-dir>/devices/, named by the device's id (not its name, so a rename
// rewrites one file). Every change replaces or removes one file atomically
// (temp file, fsync, rename, fsync dir): a crash leaves the old or the new
// definition, and a verb on one device never rewrites another's (a device
// of a million targets costs only its own verbs).
//
// The store itself holds no lock: each device's verbs are serialized by
// that device's opMu, and different devices touch different files.
type stateStore struct {
	dir string
	// failWrites makes every save and remove fail (tests of atomicity
	// without a read-only filesystem).
	failWrites atomic.Bool
	// failDirSyncs makes that many directory fsyncs fail, after the
	// rename or unlink they were to make durable (tests).
	failDirSyncs atomic.Int32
}

var errInjected = errors.New("injected state write failure")

// errNotDurable is a change made in the state directory (a file renamed
// into place or removed) whose directory fsync then failed: the change is
// visible, and a restart reads it unless the machine crashes first. The
// caller must undo it, or say that the state holds it.
var errNotDurable = errors.New("the change is in the directory but its fsync failed")

func (s *stateStore) devicesDir() string { return filepath.Join(s.dir, "devices") }
func (s *stateStore) legacyPath() string { return filepath.Join(s.dir, "state.json") }
func (s *stateStore) fileOf(id string) string {
	return filepath.Join(s.devicesDir(), id+".json")
}

// newID names a new device's state file.
func newID() string { return strings.ReplaceAll(newUUID(), "-", "") }

// legacyID is the id a device migrated from state.json gets: derived from
// its name, so that a migration interrupted by a crash and run again
// writes the same files.
func legacyID(name string) string {
	h := sha256.Sum256([]byte(name))
	return "v1-" + hex.EncodeToString(h[:12])
}

// open prepares the state directory: creates devices/, removes temp files
// that a crash left behind, and migrates a legacy state.json. It returns
// every device definition it can read, sorted by name, and one error per
// file it cannot (left untouched). An unreadable legacy state.json is a
// fatal error: nothing can be migrated from it.
func (s *stateStore) open() ([]deviceState, []error, error) {
	if err := os.MkdirAll(s.devicesDir(), 0o700); err != nil {
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	s.removeTemps(s.dir, ".state-") // the single file's temp names
	s.removeTemps(s.devicesDir(), tmpPrefix)
	if err := s.migrate(); err != nil {
		return nil, nil, err
	}
	entries, err := os.ReadDir(s.devicesDir())
	if err != nil {
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	var devs []deviceState
	var bad []error
	unread := map[string]bool{}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		st, err := s.read(filepath.Join(s.devicesDir(), e.Name()))
		if err != nil {
			bad = append(bad, err)
			unread[strings.TrimSuffix(e.Name(), ".json")] = true
			continue
		}
		devs = append(devs, st)
	}
	s.sweepTables(devs, unread)
	sort.Slice(devs, func(i, j int) bool { return devs[i].Name < devs[j].Name })
	return devs, bad, nil
}

func (s *stateStore) read(path string) (deviceState, error) {
	var st deviceState
	b, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state: %s is not valid JSON (%v); it was left untouched", path, err)
	}
	if st.Version != stateVersion {
		return st, fmt.Errorf("state: %s has version %d, this gdm reads %d; it was left untouched", path, st.Version, stateVersion)
	}
	if want := strings.TrimSuffix(filepath.Base(path), ".json"); st.ID != want {
		return st, fmt.Errorf("state: %s holds id %q, not its file name's; it was left untouched", path, st.ID)
	}
	if err := checkTableFiles(st); err != nil {
		return st, fmt.Errorf("state: %s %v; it was left untouched", path, err)
	}
	return st, nil
}

// removeTemps deletes temp files a kill -9 left in dir.
func (s *stateStore) removeTemps(dir, prefix string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), prefix) && strings.HasSuffix(e.Name(), ".tmp") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// migrate turns a legacy state.json into per-device files, then renames it
// to state.json.migrated (kept for the operator). Run again after a crash
// half-way, it writes the same files.
func (s *stateStore) migrate() error {
	b, err := os.ReadFile(s.legacyPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	var doc legacyDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("state: %s is not valid JSON (%v); it was left untouched: fix or move it away", s.legacyPath(), err)
	}
	if doc.Version != legacyVersion {
		return fmt.Errorf("state: %s has version %d, this gdm reads %d; it was left untouched", s.legacyPath(), doc.Version, legacyVersion)
	}
	if err := checkLegacyNames(doc.Devices); err != nil {
		return fmt.Errorf("state: %s %v; it was left untouched: fix or move it away", s.legacyPath(), err)
	}
	for _, st := range doc.Devices {
		st.Version, st.ID = stateVersion, legacyID(st.Name)
		if err := s.save(st); err != nil {
			return err
		}
	}
	if err := os.Rename(s.legacyPath(), s.legacyPath()+".migrated"); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return syncDir(s.dir)
}

// checkLegacyNames refuses a legacy document naming a device twice: the
// id is derived from the name, so the second device's file would replace
// the first's and one device would vanish without a word.
func checkLegacyNames(devs []deviceState) error {
	seen := make(map[string]bool, len(devs))
	for _, st := range devs {
		if seen[st.Name] {
			return fmt.Errorf("names device %q twice", st.Name)
		}
		seen[st.Name] = true
	}
	return nil
}

// save replaces the device's file with st, atomically.
func (s *stateStore) save(st deviceState) error {
	if s.failWrites.Load() {
		return fmt.Errorf("state: %w", errInjected)
	}
	st.Version = stateVersion
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return s.replace(func(w io.Writer) (string, error) {
		_, err := w.Write(append(b, '\n'))
		return st.ID + ".json", err
	})
}

// replace writes a file of devices/ atomically and durably: write fills a
// temp file and returns the name it is to have; the temp file is fsynced,
// renamed to that name, and the directory fsynced.
func (s *stateStore) replace(write func(w io.Writer) (string, error)) error {
	tmp, name, err := s.writeTemp(write)
	if err != nil {
		return err
	}
	return s.install(tmp, name)
}

// writeTemp is replace's first half: a temp file filled by write and
// fsynced, and the name write gave it. On error no temp file is left.
func (s *stateStore) writeTemp(write func(w io.Writer) (string, error)) (tmpPath, name string, err error) {
	tmp, err := os.CreateTemp(s.devicesDir(), tmpPrefix+"*.tmp")
	if err != nil {
		return "", "", fmt.Errorf("state: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if name, err = write(tmp); err != nil {
		tmp.Close()
		return "", "", fmt.Errorf("state: write: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		tmp.Close()
		return "", "", fmt.Errorf("state: fsync: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return "", "", fmt.Errorf("state: %w", err)
	}
	return tmp.Name(), name, nil
}

// install is replace's second half: the fsynced temp file renamed to name
// in devices/, and the directory fsynced. On error the temp file is gone.
func (s *stateStore) install(tmpPath, name string) error {
	if err := os.Rename(tmpPath, filepath.Join(s.devicesDir(), name)); err != nil {
		os.Remove(tmpPath)
		return fmt.Errorf("state: %w", err)
	}
	return s.syncChanged(s.devicesDir())
}

// remove deletes the device's file, durably.
func (s *stateStore) remove(id string) error {
	if s.failWrites.Load() {
		return fmt.Errorf("state: %w", errInjected)
	}
	if err := os.Remove(s.fileOf(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state: %w", err)
	}
	return s.syncChanged(s.devicesDir())
}

// injectDirSyncFailure takes one of failDirSyncs, if any are left.
func (s *stateStore) injectDirSyncFailure() bool {
	for {
		n := s.failDirSyncs.Load()
		if n <= 0 {
			return false
		}
		if s.failDirSyncs.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// syncChanged fsyncs a directory just changed; its failure is
// errNotDurable.
func (s *stateStore) syncChanged(dir string) error {
	err := syncDir(dir)
	if s.injectDirSyncFailure() {
		err = errInjected
	}
	if err != nil {
		return fmt.Errorf("state: %w: %w", errNotDurable, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("state: fsync dir: %w", err)
	}
	return nil
}
