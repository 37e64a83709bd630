package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
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
	errBadName  = errors.New("bad device name: use letters, digits, '-', '_', '.', '+', at most 127")
	errNoTable  = errors.New("no table given")
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.+-]{1,127}$`)

// daemon owns the devices, serves them over NBD and keeps the state file.
type daemon struct {
	log   *slog.Logger
	state *stateFile
	nbd   *nbdserver.Server
	timed bool // devices keep latency histograms (metrics are on)

	mu      sync.Mutex // guards devices and orders state writes
	devices map[string]*managed
}

// managed is one device with what the daemon knows of it beyond the table
// package: its uuid, and the export the NBD server hands to connections.
type managed struct {
	dev   *table.Device
	uuid  string
	exp   *deviceExport
	conns atomic.Int64 // open NBD connections
	gone  atomic.Bool  // removed: no new connections
}

func newDaemon(log *slog.Logger, state *stateFile, timed bool) *daemon {
	d := &daemon{log: log, state: state, timed: timed, devices: map[string]*managed{}}
	d.nbd = &nbdserver.Server{Exports: d, Log: log.With("component", "nbd")}
	return d
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (d *daemon) newManaged(name, uuid string, readOnly bool) *managed {
	dev := table.NewDevice(name, readOnly, d.log)
	dev.TimeIO(d.timed)
	if uuid == "" {
		uuid = newUUID()
	}
	m := &managed{dev: dev, uuid: uuid}
	m.exp = &deviceExport{Device: dev}
	return m
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

// saveLocked writes every device's definition; called with mu held after
// each change, so the file always follows the devices.
func (d *daemon) saveLocked() error {
	var devs []deviceState
	for _, m := range d.devices {
		devs = append(devs, m.snapshot())
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].Name < devs[j].Name })
	if err := d.state.save(devs); err != nil {
		d.log.Error("saving state", "err", err)
		return fmt.Errorf("device changed but state not saved: %w", err)
	}
	return nil
}

func (m *managed) snapshot() deviceState {
	s := deviceState{Name: m.dev.Name(), UUID: m.uuid, Suspended: m.dev.Suspended(), ReadOnly: m.dev.ReadOnly()}
	if t := m.dev.Acquire(false); t != nil {
		s.Live = t.Text()
		t.Put()
	}
	if t := m.dev.Acquire(true); t != nil {
		s.Inactive = t.Text()
		t.Put()
	}
	return s
}

func (d *daemon) save() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.saveLocked()
}

// create makes a device whose table goes live at once.
func (d *daemon) create(name, text, uuid string, readOnly bool) error {
	if !nameRE.MatchString(name) {
		return errBadName
	}
	if text == "" {
		return errNoTable
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.devices[name]; ok {
		return fmt.Errorf("%w: %s", errExists, name)
	}
	m := d.newManaged(name, uuid, readOnly)
	if err := m.dev.LoadText(text); err != nil {
		m.dev.Close()
		return err
	}
	if err := m.dev.Resume(context.Background(), true); err != nil {
		m.dev.Close()
		return err
	}
	d.devices[name] = m
	return d.saveLocked()
}

// load puts a table in the device's inactive slot.
func (d *daemon) load(name, text string) error {
	if text == "" {
		return errNoTable
	}
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if err := m.dev.LoadText(text); err != nil {
		return err
	}
	return d.save()
}

func (d *daemon) resume(ctx context.Context, name string, live bool) error {
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if err := m.dev.Resume(ctx, live); err != nil {
		return err
	}
	return d.save()
}

func (d *daemon) suspend(ctx context.Context, name string, noflush bool) error {
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if err := m.dev.Suspend(ctx, noflush); err != nil {
		return err
	}
	return d.save()
}

func (d *daemon) clear(name string) error {
	m, err := d.get(name)
	if err != nil {
		return err
	}
	if err := m.dev.Clear(); err != nil {
		return err
	}
	return d.save()
}

// remove takes the device out of the catalogue, ends its connections when
// forced, and destroys its tables: when it returns, no backing file of the
// device is open and the name is free.
func (d *daemon) remove(name string, force bool) error {
	d.mu.Lock()
	m, ok := d.devices[name]
	if !ok {
		d.mu.Unlock()
		return fmt.Errorf("%w: %s", errNoDevice, name)
	}
	if m.conns.Load() > 0 && !force {
		d.mu.Unlock()
		return errBusy
	}
	m.gone.Store(true)
	delete(d.devices, name)
	err := d.saveLocked()
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
	return err
}

func (d *daemon) rename(old, new string) error {
	if !nameRE.MatchString(new) {
		return errBadName
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.devices[old]
	if !ok {
		return fmt.Errorf("%w: %s", errNoDevice, old)
	}
	if _, ok := d.devices[new]; ok {
		return fmt.Errorf("%w: %s", errExists, new)
	}
	// Connections keep their Export, so they are not disturbed; the
	// device's errors and log lines name it anew.
	delete(d.devices, old)
	d.devices[new] = m
	m.dev.Rename(new)
	return d.saveLocked()
}

// list returns the devices, sorted by name.
func (d *daemon) list() []*managed {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*managed, 0, len(d.devices))
	for _, m := range d.devices {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name() < out[j].name() })
	return out
}

func (m *managed) name() string { return m.dev.Name() }

// closeAll destroys every device's tables (daemon shutdown).
func (d *daemon) closeAll() {
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
