package table

import "github.com/gdm-project/gdm/pkg/targets"

// What a table's targets allow as a whole, as dm's io_hints and queue
// limits give a device: its logical block size, and discard and
// write-zeroes support.

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

// SupportsDiscard says whether the table takes discards: every target
// takes them (targets.Discarder), and the devices of each target that
// sends them on take them too (devcaps.go), as dm_table_supports_discards
// asks.
func (t *Table) SupportsDiscard() bool { return t.traits().discards }

// SupportsDiscard is the live table's (see Table.SupportsDiscard); true
// without one.
func (d *Device) SupportsDiscard() bool {
	ok := true
	d.View(Live, func(t *Table) error { ok = t.SupportsDiscard(); return nil })
	return ok
}

// SupportsWriteZeroes says whether the table takes write-zeroes without
// being sent zeros: every target passes them on (targets.ZeroPasser) to
// devices that take them, as dm_table_supports_write_zeroes asks. Zero
// serves any table all the same, writing zeros where it must.
func (t *Table) SupportsWriteZeroes() bool { return t.traits().writeZeroes }

// SupportsWriteZeroes is the live table's (see
// Table.SupportsWriteZeroes); true without one.
func (d *Device) SupportsWriteZeroes() bool {
	ok := true
	d.View(Live, func(t *Table) error { ok = t.SupportsWriteZeroes(); return nil })
	return ok
}
