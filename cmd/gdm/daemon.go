package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/gdm-project/gdm/pkg/nbdserver"
	"github.com/gdm-project/gdm/pkg/table"
	"github.com/gdm-project/gdm/pkg/targets"
)

// Errors of the daemon's device registry; the control API maps them to HTTP
// statuses.
var (
	errNoDevice = errors.New("no such device")
	errExists   = errors.New("device already exists")
	errBusy     = errors.New("device busy: NBD connections are open (use --force to disconnect them)")
	errNoTable  = errors.New("no table given")
	errBroken   = errors.New("device is broken")
)

// daemon owns the devices, serves them over NBD and keeps their state files.
//
// Locking: mu guards only the registry (devices, reserved) and is held for
// map operations alone, never across a parse, a file open, a state write, a
// drain or anything else that can block: handshakes, scrapes and verbs on
// other devices take it too. Each device's verbs are serialized by its own
// opMu, which is held across the slow parts of one verb on that device.
type daemon struct {
	log   *slog.Logger
	state *stateStore
	nbd   *nbdserver.Server
	timed bool // devices keep latency histograms (metrics are on)
	// buildHook, when set, runs before each table a verb builds (tests
	// use it to hold a verb in its slow part).
	buildHook func(name string)
	// unreadableStates counts state files skipped at start (metric).
	unreadableStates int
	// open is how tables open backing devices: the allow-list and the
	// open timeout (Expect is set per table).
	open targets.OpenOptions

	mu       sync.Mutex          // guards devices and reserved
	devices  map[string]*managed // by name
	reserved map[string]bool     // names and "uuid:"+uuids a create or rename is claiming
}

// managed is one device with what the daemon knows of it beyond the table
// package: its uuid, its persisted definition, and the export the NBD
// server hands to connections.
type managed struct {
	id    string // its state file; immutable
	uuid  string // immutable
	dev   *table.Device
	exp   *deviceExport
	conns atomic.Int64 // open NBD connections
	gone  atomic.Bool  // removed (or being removed): no new connections

	opMu  sync.Mutex  // serializes this device's verbs
	saved deviceState // guarded by opMu: what its state file says now
	// broken is why the device could not be restored at start (nil when it
	// is fine); written under opMu. A broken device has no tables open;
	// load + resume repair it, remove removes it.
	broken atomic.Pointer[string]
}

func newDaemon(log *slog.Logger, state *stateStore, timed bool) *daemon {
	d := &daemon{log: log, state: state, timed: timed, devices: map[string]*managed{}, reserved: map[string]bool{}}
	d.nbd = &nbdserver.Server{Exports: d, Log: log.With("component", "nbd")}
	return d
}

func (d *daemon) newManaged(st deviceState) *managed {
	m := &managed{id: st.ID, uuid: st.UUID, dev: d.newDevice(st), saved: st}
	m.exp = &deviceExport{Device: m.dev}
	return m
}

func (d *daemon) newDevice(st deviceState) *table.Device {
	dev := table.NewDevice(st.Name, st.ReadOnly, d.log)
	dev.TimeIO(d.timed)
	return dev
}

func (d *daemon) get(name string) (*managed, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.devices[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", errNoDevice, name)
	}
	return m, nil
}

// lockDevice finds a device and takes its verb lock. It fails if the
// device was removed or renamed while the caller waited for the lock (the
// name is then no longer the device the caller meant).
func (d *daemon) lockDevice(name string) (*managed, error) {
	m, err := d.get(name)
	if err != nil {
		return nil, err
	}
	m.opMu.Lock()
	if m.gone.Load() || m.name() != name {
		m.opMu.Unlock()
		return nil, fmt.Errorf("%w: %s", errNoDevice, name)
	}
	return m, nil
}

// reserve claims a name (and a uuid, if not "") for a create or rename in
// progress, so that a second verb cannot claim them meanwhile.
func (d *daemon) reserve(name, uuid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.devices[name]; ok || d.reserved[name] {
		return fmt.Errorf("%w: %s", errExists, name)
	}
	if uuid != "" {
		if d.reserved["uuid:"+uuid] {
			return fmt.Errorf("%w: %s", errUUIDInUse, uuid)
		}
		for _, m := range d.devices {
			if m.uuid == uuid {
				return fmt.Errorf("%w: %s (by %s)", errUUIDInUse, uuid, m.name())
			}
		}
		d.reserved["uuid:"+uuid] = true
	}
	d.reserved[name] = true
	return nil
}

func (d *daemon) unreserve(name, uuid string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.reserved, name)
	if uuid != "" {
		delete(d.reserved, "uuid:"+uuid)
	}
}

// build parses and opens a table for m, with no registry lock held. With
// expect, each path must still name the file it named then.
func (d *daemon) build(m *managed, text string, expect map[string]targets.Identity) (*table.Table, error) {
	if h := d.buildHook; h != nil {
		h(m.name())
	}
	opts := d.open
	opts.Expect = expect
	return m.dev.Build(text, opts)
}

// commit makes next the device's persisted definition. Every verb writes
// its state file before (or, for resume and suspend, around) its change in
// memory, so that either both happen or neither does.
func (d *daemon) commitLocked(m *managed, next deviceState) error {
	if err := d.state.save(next); err != nil {
		d.log.Error("saving state", "device", next.Name, "err", err)
		return fmt.Errorf("state not saved, nothing was changed: %w", err)
	}
	m.saved = next
	return nil
}

// create makes a device whose table goes live at once.
func (d *daemon) create(name, text, uuid string, readOnly bool) (*managed, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := checkUUID(uuid); err != nil {
		return nil, err
	}
	if text == "" {
		return nil, errNoTable
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
	if err := d.loadLocked(m, text, true); err != nil {
		return nil, d.undoCreate(m, err)
	}
	if err := m.dev.Resume(context.Background(), true); err != nil {
		m.dev.Close()
		return nil, d.undoCreate(m, err)
	}
	d.mu.Lock()
	d.devices[name] = m
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
	}
	return err
}

// load puts a table in the device's inactive slot.
func (d *daemon) load(name, text string) (*managed, error) {
	if text == "" {
		return nil, errNoTable
	}
	m, err := d.lockDevice(name)
	if err != nil {
		return nil, err
	}
	defer m.opMu.Unlock()
	if err := d.loadLocked(m, text, false); err != nil {
		return nil, err
	}
	return m, nil
}

// loadLocked builds a table from text and puts it in m's inactive slot,
// recording it in m's state first: as its live table (create, which
// resumes it next) or as its inactive one (load).
func (d *daemon) loadLocked(m *managed, text string, asLive bool) error {
	t, err := d.build(m, text, nil)
	if err != nil {
		return err
	}
	next := m.saved
	if asLive {
		next.Live, next.LiveIdentities = t.Text(), t.Identities()
	} else {
		next.Inactive, next.InactiveIdentities = t.Text(), t.Identities()
	}
	err = d.writeAhead(m, next, func() error { return m.dev.Load(t) }) // Load fails only on a removed device, which opMu rules out
	if err != nil {
		m.dev.Discard(t)
	}
	return err
}

// writeAhead persists next, runs op, and on op's failure persists the
// device's previous definition again. For verbs (resume, suspend) whose
// change in memory can fail after the state was written.
func (d *daemon) writeAhead(m *managed, next deviceState, op func() error) error {
	prev := m.saved
	if err := d.commitLocked(m, next); err != nil {
		return err
	}
	if err := op(); err != nil {
		if rerr := d.commitLocked(m, prev); rerr != nil {
			d.log.Error("state says the failed verb happened; it did not", "device", m.name(), "err", rerr)
		}
		return err
	}
	return nil
}

func (d *daemon) resume(ctx context.Context, name string, live bool) (*managed, error) {
	m, err := d.lockDevice(name)
	if err != nil {
		return nil, err
	}
	defer m.opMu.Unlock()
	if reason := m.broken.Load(); reason != nil && !m.dev.HasInactive() {
		return nil, fmt.Errorf("%w (%s): load a table, then resume", errBroken, *reason)
	}
	next := m.saved
	if m.dev.HasInactive() {
		next.Live, next.Inactive = next.Inactive, ""
		next.LiveIdentities, next.InactiveIdentities = next.InactiveIdentities, nil
	}
	next.Suspended = false
	if err := d.writeAhead(m, next, func() error { return m.dev.Resume(ctx, live) }); err != nil {
		return nil, err
	}
	if m.broken.Swap(nil) != nil {
		d.log.Info("broken device repaired", "device", name)
	}
	return m, nil
}

func (d *daemon) suspend(ctx context.Context, name string, noflush bool) (*managed, error) {
	m, err := d.lockDevice(name)
	if err != nil {
		return nil, err
	}
	defer m.opMu.Unlock()
	if reason := m.broken.Load(); reason != nil {
		return nil, fmt.Errorf("%w: %s", errBroken, *reason)
	}
	next := m.saved
	next.Suspended = true
	if err := d.writeAhead(m, next, func() error { return m.dev.Suspend(ctx, noflush) }); err != nil {
		return nil, err
	}
	return m, nil
}

func (d *daemon) clear(name string) (*managed, error) {
	m, err := d.lockDevice(name)
	if err != nil {
		return nil, err
	}
	defer m.opMu.Unlock()
	next := m.saved
	next.Inactive, next.InactiveIdentities = "", nil
	if err := d.commitLocked(m, next); err != nil {
		return nil, err
	}
	if err := m.dev.Clear(); err != nil {
		return nil, err
	}
	return m, nil
}

// remove takes the device out of the catalogue, ends its connections when
// forced, and destroys its tables: when it returns, no backing file of the
// device is open and the name is free. If its state file cannot be
// removed, nothing is: the device stays as it was.
func (d *daemon) remove(name string, force bool) error {
	m, err := d.lockDevice(name)
	if err != nil {
		return err
	}
	defer m.opMu.Unlock()
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
		return fmt.Errorf("state not saved, nothing was changed: %w", err)
	}
	d.mu.Lock()
	delete(d.devices, name)
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
	return nil
}

func (d *daemon) rename(old, new string) (*managed, error) {
	if err := checkName(new); err != nil {
		return nil, err
	}
	m, err := d.lockDevice(old)
	if err != nil {
		return nil, err
	}
	defer m.opMu.Unlock()
	if err := d.reserve(new, ""); err != nil {
		return nil, err
	}
	defer d.unreserve(new, "")
	next := m.saved
	next.Name = new
	if err := d.commitLocked(m, next); err != nil {
		return nil, err
	}
	// Connections keep their Export, so they are not disturbed; the
	// device's errors and log lines name it anew.
	d.mu.Lock()
	delete(d.devices, old)
	d.devices[new] = m
	m.dev.Rename(new)
	d.mu.Unlock()
	return m, nil
}

// list returns the devices, sorted by name.
func (d *daemon) list() []*managed {
	d.mu.Lock()
	out := make([]*managed, 0, len(d.devices))
	for _, m := range d.devices {
		out = append(out, m)
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name() < out[j].name() })
	return out
}

func (m *managed) name() string { return m.dev.Name() }

// brokenCount counts the devices that could not be restored.
func (d *daemon) brokenCount() int {
	n := 0
	for _, m := range d.list() {
		if m.broken.Load() != nil {
			n++
		}
	}
	return n
}

// closeAll destroys every device's tables (daemon shutdown), or gives up
// when ctx ends: a backing device that hangs must not hold the daemon past
// its shutdown timeout.
func (d *daemon) closeAll(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, m := range d.list() {
			// Acquire, not Get: a suspended device is flushed too.
			if t := m.dev.Acquire(false); t != nil {
				if err := t.Flush(); err != nil {
					d.log.Warn("flush at shutdown", "device", m.name(), "err", err)
				}
				t.Put()
			}
			m.dev.Close()
		}
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing devices: %w", ctx.Err())
	}
}

// The daemon is the NBD server's catalogue.
var _ nbdserver.Exports = (*daemon)(nil)

func (d *daemon) info(m *managed) nbdserver.ExportInfo {
	return nbdserver.ExportInfo{Name: m.name(), Description: "gdm device " + m.name(), ReadOnly: m.dev.ReadOnly(), Size: m.dev.Size()}
}

func (d *daemon) List() []nbdserver.ExportInfo {
	var out []nbdserver.ExportInfo
	for _, m := range d.list() {
		out = append(out, d.info(m))
	}
	return out
}

func (d *daemon) Info(name string) (nbdserver.ExportInfo, bool) {
	m, err := d.get(name)
	if err != nil {
		return nbdserver.ExportInfo{}, false
	}
	return d.info(m), true
}

// Open hands a device to a new NBD connection. It takes mu only for the
// lookup and the connection count (remove checks both under mu).
func (d *daemon) Open(name string) (nbdserver.Export, func(), error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.devices[name]
	if !ok || m.gone.Load() {
		return nil, nil, nbdserver.ErrUnknownExport
	}
	if !m.dev.HasLive() {
		return nil, nil, fmt.Errorf("device %s has no live table", name)
	}
	m.conns.Add(1)
	var once sync.Once
	return m.exp, func() { once.Do(func() { m.conns.Add(-1) }) }, nil
}

// deviceExport adapts a table.Device to nbdserver.Export.
type deviceExport struct {
	*table.Device
}

var (
	_ nbdserver.Export       = (*deviceExport)(nil)
	_ nbdserver.SpliceReader = (*deviceExport)(nil)
)

func (e *deviceExport) Zero(ctx context.Context, off, length int64, noHole, fast bool) error {
	return e.Device.Zero(ctx, off, length, targets.ZeroFlags{NoHole: noHole, Fast: fast})
}

// SpliceRead lets the NBD server send large reads without copying them.
func (e *deviceExport) SpliceRead(ctx context.Context, pipe int, off, length int64) error {
	err := e.Device.SpliceRead(ctx, pipe, off, length)
	if err == targets.ErrPipeFull {
		return fmt.Errorf("%w: %w", nbdserver.ErrNoSplice, err)
	}
	return err
}

func (e *deviceExport) Extents(ctx context.Context, off, length int64, emit func(int64, uint32) bool) error {
	return e.Device.Extents(ctx, off, length, func(x targets.Extent) bool { return emit(x.Length, x.Flags) })
}
