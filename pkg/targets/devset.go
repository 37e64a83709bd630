package targets

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// DevSet is a table's list of open backing devices, like dm's dm_dev list:
// a path used by several targets is opened once. Close closes them all,
// exactly once, and is called only when the table is destroyed.
type DevSet struct {
	readOnly bool
	opts     OpenOptions // immutable

	mu     sync.Mutex // guards devs, order, closed
	devs   map[string]*Dev
	order  []*Dev
	closed bool
	// areas are the device areas noted since the last TakeAreas. Only
	// the goroutine building the table touches them (the targets' New run
	// there, one after another), so they take no lock: a million-target
	// table is built without two more per target.
	areas []Area

	closes atomic.Int32 // how many times Close did the work (must end at 0 or 1)

	// event is what RaiseEvent calls: the device's event while the set's
	// table is live, nil otherwise (dm drops a table's events until it
	// is bound).
	event atomic.Pointer[func()]
}

// NewDevSet makes an empty set; readOnly opens every device read-only.
func NewDevSet(readOnly bool) *DevSet {
	return NewDevSetWith(readOnly, OpenOptions{})
}

// NewDevSetWith makes an empty set that opens devices under opts.
func NewDevSetWith(readOnly bool, opts OpenOptions) *DevSet {
	s := &DevSet{readOnly: readOnly, opts: opts, devs: map[string]*Dev{}}
	s.opts.onChange = s.RaiseEvent // a remote leg going down or coming back
	return s
}

// SetEventFunc sets what RaiseEvent calls (nil: nothing), as the table
// owning the set goes live or stops being so.
func (s *DevSet) SetEventFunc(f func()) {
	if s == nil {
		return
	}
	if f == nil {
		s.event.Store(nil)
		return
	}
	s.event.Store(&f)
}

// RaiseEvent signals a change a monitor waits for (`gdm wait`): a remote
// device's connection went down or came back, as dm-mpath raises an
// event when a path fails; a striped leg's device failed I/O, as
// dm-stripe's end_io raises one (striped_health.go).
func (s *DevSet) RaiseEvent() {
	if f := s.event.Load(); f != nil {
		(*f)()
	}
}

// Open returns the device at path, opening it on first use. The open is
// bounded by the options' timeout; s.mu is held meanwhile, which only
// delays this table's own construction.
func (s *DevSet) Open(path string) (*Dev, error) {
	if path == "" {
		return nil, ErrEmptyPath
	}
	key, options := filepath.Clean(path), ""
	if IsRemote(path) {
		var err error
		if key, options, err = devKey(path); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("targets: device set is closed")
	}
	if d, ok := s.devs[key]; ok {
		if d.remoteOptions != options {
			// One export, one client: the second spelling's options
			// would be ignored without a word.
			return nil, fmt.Errorf("targets: %s: %w: this export is already named as %s, with other options (%s, not %s); name it the same way each time",
				path, ErrBadURI, d.path, d.remoteOptions, options)
		}
		return d, nil
	}
	open := openDev
	if IsRemote(path) {
		open = openRemote
	}
	d, err := open(path, s.readOnly, &s.opts)
	if err != nil {
		return nil, err
	}
	s.devs[key] = d
	s.order = append(s.order, d)
	return d, nil
}

// Area is a range of a target on one of its devices, in 512-byte sectors:
// what dm's iterate_devices hands its callouts (dev, start, len), and what
// dm checks against the device's logical block size at load
// (device_area_is_invalid).
type Area struct {
	Dev            *Dev
	Start, Sectors uint64
}

// noteArea records that a target maps sectors of d from start.
func (s *DevSet) noteArea(d *Dev, start, sectors uint64) {
	s.areas = append(s.areas, Area{Dev: d, Start: start, Sectors: sectors})
}

// TakeAreas returns the areas the targets made since the last call noted
// (every target that opens a device by openSized: linear, striped, crypt,
// delay, dust, flakey, log-writes' data device, snapshot's and
// snapshot-origin's origin; snapshot's COW device, whole, as dm lists it
// too), and forgets them. The table calls it after
// each target's New, so what it gets is that target's areas, as dm's
// iterate_devices would list them. The slice is the set's own, valid
// until the next Open: a million-target table makes no garbage for it.
// Like the targets' New, it is called by the goroutine building the
// table only.
func (s *DevSet) TakeAreas() []Area {
	a := s.areas
	s.areas = s.areas[:0]
	return a
}

// Devs lists the open devices in the order they were opened.
func (s *DevSet) Devs() []*Dev {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Dev(nil), s.order...)
}

// Sync flushes every device, in parallel, and returns their errors. A
// remote device's flush ends when ctx does (see Dev.SyncContext).
func (s *DevSet) Sync(ctx context.Context) error { return s.SyncEach(ctx, nil) }

// SyncEach is Sync, and then calls failed (when not nil) with each device
// whose flush failed, and its error, in the set's order and from the
// caller's goroutine: the table counts a client's FLUSH that failed on a
// device against the striped legs on it (FlushCounter).
func (s *DevSet) SyncEach(ctx context.Context, failed func(*Dev, error)) error {
	devs := s.Devs()
	errs := make([]error, len(devs))
	if len(devs) == 1 {
		errs[0] = devs[0].SyncContext(ctx)
	} else {
		var wg sync.WaitGroup
		for i, d := range devs {
			wg.Go(func() { errs[i] = d.SyncContext(ctx) })
		}
		wg.Wait()
	}
	for i, err := range errs {
		if err != nil && failed != nil {
			failed(devs[i], err)
		}
	}
	return errors.Join(errs...)
}

// Close closes every device. Only the first call does anything.
func (s *DevSet) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.closes.Add(1)
	var errs []error
	for _, d := range s.order {
		errs = append(errs, d.Close())
	}
	return errors.Join(errs...)
}

// Closes says how many times Close did its work: 0 or 1, never more.
func (s *DevSet) Closes() int { return int(s.closes.Load()) }
