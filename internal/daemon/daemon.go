package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/gdm-project/gdm/internal/controlapi"
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
	// errTableWithNoTable is a create asked for no table, given one.
	errTableWithNoTable = errors.New("a table was given to a create without one (no_table)")
	errBroken           = errors.New("device is broken")
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
	// version is what /v1/version answers.
	version string
	// unreadableStates counts state files skipped at start (metric).
	unreadableStates int
	// open is how tables open backing devices: the allow-list and the
	// open timeout (Expect is set per table).
	open targets.OpenOptions
	// retired keeps the drain waits of devices that are gone.
	retired drainRetired
	att     *attacher // gdm attach: the kernel's NBD devices
	// uploads holds a token per big table upload being read or built
	// (uploadSlot in control_bounds.go).
	uploads chan struct{}
	// answers holds a token per answer copying a big table (answerSlot
	// in control_bounds.go).
	answers chan struct{}
	// waits holds a token per `gdm wait` request waiting (verbs_dm.go).
	waits chan struct{}

	mu      sync.Mutex          // guards devices, uuids and reserved
	devices map[string]*managed // by name
	// uuids indexes devices by uuid, so that a create's check costs O(1),
	// not a walk of every device (10,000 creates were quadratic). More
	// than one only for devices an older gdm let share a uuid.
	uuids    map[string][]*managed
	reserved map[string]bool // names and "uuid:"+uuids a create or rename is claiming
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

	opMu  verbLock    // serializes this device's verbs
	saved deviceState // guarded by opMu: its definition in force, which its state file says (unless a put-back failed: saveBack)
	// broken is why the device could not be restored at start (nil when it
	// is fine); written under opMu. A broken device has no tables open;
	// load + resume repair it, remove removes it.
	broken atomic.Pointer[string]
	// lostInactive is why the saved inactive table could not be built at
	// start (nil when there was none, or it was): the device runs on its
	// live table, its state file still names the table, and resume is
	// refused until a load or clear replaces it. Written under opMu.
	lostInactive atomic.Pointer[string]
	// attached is its kernel NBD device (saved.Attached, readable
	// without opMu by ls and info); written under opMu.
	attached atomic.Pointer[controlapi.Attachment]
}

func newDaemon(log *slog.Logger, state *stateStore, timed bool) *daemon {
	d := &daemon{log: log, state: state, timed: timed, devices: map[string]*managed{}, uuids: map[string][]*managed{}, reserved: map[string]bool{},
		uploads: make(chan struct{}, maxBigUploads), answers: make(chan struct{}, maxBigAnswers), waits: make(chan struct{}, maxWaits)}
	d.nbd = &nbdserver.Server{Exports: d, Log: log.With("component", "nbd")}
	d.att = newAttacher(d)
	return d
}

func (d *daemon) newManaged(st deviceState) *managed {
	m := &managed{id: st.ID, uuid: st.UUID, dev: d.newDevice(st), saved: st, opMu: newVerbLock()}
	m.exp = &deviceExport{Device: m.dev}
	m.attached.Store(st.Attached)
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
	return d.lockDeviceContext(context.Background(), name)
}

// lockDeviceContext is lockDevice for a verb with a deadline: it gives up
// waiting for the device's verb lock when ctx ends, and does not take it
// once ctx has ended (the lock and the end may come together).
func (d *daemon) lockDeviceContext(ctx context.Context, name string) (*managed, error) {
	m, err := d.get(name)
	if err != nil {
		return nil, err
	}
	if err := m.opMu.lockContext(ctx, name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		m.opMu.Unlock()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
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
		if ms := d.uuids[uuid]; len(ms) > 0 {
			return fmt.Errorf("%w: %s (by %s)", errUUIDInUse, uuid, ms[0].name())
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

// namedDevice is a device and the name it had when the catalogue was read.
type namedDevice struct {
	name string
	m    *managed
}

// listNamed is list with each device's name as of one instant: names that
// are distinct, as a scrape's label sets must be, even when renames run
// while the caller walks the devices (a rename of a to c, then of b to a,
// would otherwise show a twice).
func (d *daemon) listNamed() []namedDevice {
	d.mu.Lock()
	out := make([]namedDevice, 0, len(d.devices))
	for name, m := range d.devices {
		out = append(out, namedDevice{name, m})
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// register adds a device to the catalogue. Called with mu held.
func (d *daemon) register(m *managed) {
	d.devices[m.name()] = m
	d.uuids[m.uuid] = append(d.uuids[m.uuid], m)
}

// unregister takes a device out of the catalogue. Called with mu held.
func (d *daemon) unregister(m *managed) {
	delete(d.devices, m.name())
	ms := slices.DeleteFunc(d.uuids[m.uuid], func(o *managed) bool { return o == m })
	if len(ms) == 0 {
		delete(d.uuids, m.uuid)
	} else {
		d.uuids[m.uuid] = ms
	}
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
			// View, not Get: a suspended device is flushed too.
			m.dev.View(table.Live, func(t *table.Table) error {
				if err := t.Flush(ctx); err != nil {
					d.log.Warn("flush at shutdown", "device", m.name(), "err", err)
				}
				return nil
			})
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
