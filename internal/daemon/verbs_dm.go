package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/pkg/table"
	"golang.org/x/sys/unix"
)

// dmsetup's verbs that are compositions or reads of the others: wipe_table,
// wait and deps.

var (
	errInactivePresent = errors.New("the device has an inactive table: resume or clear it first")
	errNoLiveTable     = errors.New("the device has no live table")
	errTooManyWaits    = errors.New("busy: too many waits at once")
)

// wipeTable replaces the live table with one of error targets of the same
// size, as `dmsetup wipe_table` does (a load and a resume, which waits for
// the I/O in flight): new I/O fails, and the old table's backing devices
// are let go. A device with an inactive table is refused, so that a
// failure can leave it as it was: when the resume fails, the error table
// loaded for it is cleared again.
func (d *daemon) wipeTable(ctx context.Context, name string) (*managed, error) {
	return d.onDeviceContext(ctx, name, func(m *managed) error {
		if m.dev.HasInactive() {
			return errInactivePresent
		}
		var sectors uint64
		if m.dev.View(table.Live, func(t *table.Table) error { sectors = t.Sectors(); return nil }) != nil {
			return errNoLiveTable
		}
		if err := d.loadLocked(m, fmt.Sprintf("0 %d error", sectors), false); err != nil {
			return err
		}
		if err := d.resumeLocked(ctx, m, false); err != nil {
			if cerr := d.clearLocked(m); cerr != nil {
				return fmt.Errorf("%w; and the error table stays loaded, inactive: %v", err, cerr)
			}
			return err
		}
		return nil
	})
}

// maxWaitPoll bounds one wait request: the client asks again until its
// own bound, so that no request outlives the control API's bounds.
const maxWaitPoll = 20 * time.Second

// maxWaits bounds the wait requests waiting at once: each holds one of
// the control API's connections (maxControlConns), which the other verbs
// need too.
const maxWaits = 16

// waitEvent answers when the device's event number is not after (as the
// kernel's DM_DEV_WAIT: "differs from"), when poll has passed, or when
// the request ends; it answers the device's info either way, and
// errNoDevice if the device went meanwhile.
func (d *daemon) waitEvent(ctx context.Context, name string, after uint64, poll time.Duration) (*managed, error) {
	m, err := d.get(name)
	if err != nil {
		return nil, err
	}
	select {
	case d.waits <- struct{}{}:
		defer func() { <-d.waits }()
	default:
		return nil, errTooManyWaits
	}
	timer := time.NewTimer(min(poll, maxWaitPoll))
	defer timer.Stop()
	for {
		n, changed := m.dev.EventWait()
		if m.gone.Load() {
			return nil, fmt.Errorf("%w: %s (removed while waited on)", errNoDevice, name)
		}
		if n != after {
			return m, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return m, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// depsOf lists the backing devices of the device's live table, as
// `dmsetup deps` lists the devices a table holds: block devices by
// number, files by path, NBD exports by URI.
func (d *daemon) depsOf(m *managed) controlapi.Deps {
	out := controlapi.Deps{Name: m.name(), Devices: []controlapi.Dep{}}
	m.dev.View(table.Live, func(t *table.Table) error {
		for _, dev := range t.Devs().Devs() {
			dep := controlapi.Dep{Path: dev.Path(), Kind: "file", Direct: dev.DirectIO()}
			switch id := dev.Identity(); {
			case dev.Remote():
				dep.Kind = "nbd"
			case id.IsBlock():
				dep.Kind, dep.Major, dep.Minor = "block", unix.Major(id.Rdev), unix.Minor(id.Rdev)
			}
			out.Devices = append(out.Devices, dep)
		}
		return nil
	})
	return out
}
