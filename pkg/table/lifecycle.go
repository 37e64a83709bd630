package table

// A table's life, at dm's points (drivers/md/dm.c): the suspend hooks
// around the stop of its I/O, the resume hooks around its start, and the
// destructor once at the end. Device calls these with its mu held, so a
// table's hooks never run concurrently with each other; I/O may.

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/gdm-project/gdm/pkg/targets"
)

// ErrLiveSwapRefused is `resume --live` of a table swap in which a table
// holds a target whose type says NoLiveSwap: the old table would keep
// serving I/O while the new one starts, two live tables over one store.
var ErrLiveSwapRefused = fmt.Errorf("table: live swap refused: %w", syscall.EBUSY)

// phase is where a table is in its life.
type phase uint8

const (
	phaseLoaded       phase = iota // built, never live
	phaseRunning                   // live and serving I/O (resume hooks ran)
	phasePresuspended              // PreSuspend ran; I/O may still arrive
	phaseSuspended                 // PostSuspend ran; no I/O
)

// presuspend runs the targets' PreSuspend, if the table is running.
func (t *Table) presuspend(ctx context.Context) {
	t.suspendStep(phaseRunning, phasePresuspended, func(s targets.Suspender) { s.PreSuspend(ctx) })
}

// presuspendUndo runs the targets' PreSuspendUndo after a suspend that
// failed: the table serves I/O again.
func (t *Table) presuspendUndo(ctx context.Context) {
	t.suspendStep(phasePresuspended, phaseRunning, func(s targets.Suspender) { s.PreSuspendUndo(ctx) })
}

// postsuspend runs the targets' PostSuspend once the table's I/O has
// stopped, PreSuspend first if it has not run: a live table always goes
// through both before it is destroyed.
func (t *Table) postsuspend(ctx context.Context) {
	t.presuspend(ctx)
	t.suspendStep(phasePresuspended, phaseSuspended, func(s targets.Suspender) { s.PostSuspend(ctx) })
}

// suspendStep moves the table from phase from to phase to, calling hook on
// each target that is a Suspender, in table order; it does nothing to a
// table in another phase.
func (t *Table) suspendStep(from, to phase, hook func(targets.Suspender)) {
	if t.phase != from {
		return
	}
	for _, tg := range t.targets {
		if s, ok := tg.(targets.Suspender); ok {
			hook(s)
		}
	}
	t.phase = to
}

// preresume asks every target whether the table may go live, in order; the
// first refusal refuses it, and nothing has changed.
func (t *Table) preresume(ctx context.Context) error {
	for i, tg := range t.targets {
		if r, ok := tg.(targets.Resumer); ok {
			if err := r.PreResume(ctx); err != nil {
				return fmt.Errorf("table: target %d (%s at sector %d) refused to resume: %w", i, t.lines.typeName(i), t.sector(i), err)
			}
		}
	}
	return nil
}

// resume runs the targets' Resume, after preresume succeeded, just before
// the table's I/O is let in.
func (t *Table) resume(ctx context.Context) {
	for _, tg := range t.targets {
		if r, ok := tg.(targets.Resumer); ok {
			r.Resume(ctx)
		}
	}
	t.phase = phaseRunning
}

// destructTargets calls every built target's destructor, once: from destroy,
// or from NewWith's failure (abandon) on a table no one saw.
func (t *Table) destructTargets() error {
	var errs []error
	for i, tg := range t.targets {
		if d, ok := tg.(targets.Destroyer); ok {
			if err := d.Destroy(); err != nil {
				errs = append(errs, fmt.Errorf("target %d (%s): destructor: %w", i, t.lines.typeName(i), err))
			}
		}
	}
	return errors.Join(errs...)
}

// abandon undoes a NewWith that failed: the targets built so far are
// destroyed and the devices opened so far closed.
func (t *Table) abandon() {
	t.destructTargets()
	t.devs.Close()
}

// noLiveSwap returns why t may not take part in a live swap, or nil: its
// first target whose type says NoLiveSwap.
func (t *Table) noLiveSwap() error {
	var typ *targets.Type
	for i := range t.Len() {
		name := t.lines.typeName(i)
		if typ == nil || typ.Name != name {
			typ, _ = targets.Lookup(name)
		}
		if typ != nil && typ.NoLiveSwap {
			return fmt.Errorf("target %d (%s at sector %d) keeps state that two live tables would corrupt", i, name, t.sector(i))
		}
	}
	return nil
}

// checkLiveSwap refuses a live swap from old to next when either table
// holds a NoLiveSwap target, saying which and what to do instead.
func (d *Device) checkLiveSwap(old, next *Table) error {
	for _, c := range []struct {
		t    *Table
		what string
	}{{old, "live"}, {next, "inactive"}} {
		if err := c.t.noLiveSwap(); err != nil {
			return fmt.Errorf("%w: %s: the %s table's %v; resume without --live (I/O then waits while the old table's in-flight I/O completes)",
				ErrLiveSwapRefused, d.Name(), c.what, err)
		}
	}
	return nil
}
