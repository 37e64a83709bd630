package table

import (
	"context"
	"fmt"
	"syscall"

	"github.com/gdm-project/gdm/pkg/targets"
)

// ErrBadMessage is a message with no words, or for a sector outside the
// table.
var ErrBadMessage = fmt.Errorf("table: bad message: %w", syscall.EINVAL)

// Message sends `dmsetup message <dev> <sector> <args...>` to the target
// holding sector, dm's rule, and returns its reply. A target type without
// messages answers targets.ErrNoMessages.
func (t *Table) Message(ctx context.Context, sector uint64, args []string) (string, error) {
	if len(args) == 0 {
		return "", fmt.Errorf("%w: empty", ErrBadMessage)
	}
	if sector >= t.Sectors() {
		return "", fmt.Errorf("%w: sector %d outside the table (%d sectors)", ErrBadMessage, sector, t.Sectors())
	}
	i, _ := t.index.Lookup(sector)
	m, ok := t.targets[i].(targets.Messenger)
	if !ok {
		return "", fmt.Errorf("table: target %d (%s): %w", i, t.lines.typeName(i), targets.ErrNoMessages)
	}
	return m.Message(ctx, args)
}

// Message sends a message to the live table's target at sector (see
// Table.Message). Like dm it does not wait for a suspended device: a
// message may be what a suspended target needs.
func (d *Device) Message(ctx context.Context, sector uint64, args []string) (string, error) {
	var reply string
	err := d.View(Live, func(t *Table) error {
		var err error
		reply, err = t.Message(ctx, sector, args)
		return err
	})
	return reply, err
}

// Status returns the status text of every target of the table in slot, in
// order, in the form typ asks for: dm's INFO (`dmsetup status`) or TABLE
// (`dmsetup table`, each target's canonical args). An empty slot gives
// ErrNoTable.
func (d *Device) Status(slot Slot, typ targets.StatusType) ([]string, error) {
	var out []string
	err := d.View(slot, func(t *Table) error { out = t.StatusOf(typ); return nil })
	return out, err
}
