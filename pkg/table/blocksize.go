package table

import "github.com/gdm-project/gdm/pkg/targets"

// What a table's targets allow as a whole, as dm's io_hints and queue
// limits give a device: its logical block size, and discard support.

// LogicalBlockSize is the smallest I/O every target of the table takes:
// the largest of its targets' (targets.BlockSizer, crypt's sector_size)
// and of the backing devices they use (targets.Dev.LogicalBlockSize: a
// block device of 4 KiB sectors, a remote export with a minimum block
// size of 4096), or 512, as dm stacks a device's logical block size from
// its targets' devices (blk_stack_limits) and io_hints.
func (t *Table) LogicalBlockSize() int { return t.traits().blockSize }

// LogicalBlockSize is the live table's (see Table.LogicalBlockSize), or
// 512 without one.
func (d *Device) LogicalBlockSize() int {
	size := targets.SectorSize
	d.View(Live, func(t *Table) error { size = t.LogicalBlockSize(); return nil })
	return size
}

// SupportsDiscard says whether every target of the table takes discards
// (targets.Discarder), as dm's table supports discards only when all its
// targets do.
func (t *Table) SupportsDiscard() bool { return t.traits().discards }

// SupportsDiscard is the live table's (see Table.SupportsDiscard); true
// without one.
func (d *Device) SupportsDiscard() bool {
	ok := true
	d.View(Live, func(t *Table) error { ok = t.SupportsDiscard(); return nil })
	return ok
}
