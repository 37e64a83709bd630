package table

import "github.com/gdm-project/gdm/pkg/targets"

// LogicalBlockSize is the smallest I/O every target of the table takes:
// the largest of its targets' (targets.BlockSizer, crypt's sector_size),
// or 512, as dm sets a device's logical block size from its targets'
// io_hints. Found once per table.
func (t *Table) LogicalBlockSize() int {
	t.blockSizeOnce.Do(func() {
		t.blockSize = targets.SectorSize
		for _, tg := range t.targets {
			if b, ok := tg.(targets.BlockSizer); ok {
				t.blockSize = max(t.blockSize, b.LogicalBlockSize())
			}
		}
	})
	return t.blockSize
}

// LogicalBlockSize is the live table's (see Table.LogicalBlockSize), or
// 512 without one.
func (d *Device) LogicalBlockSize() int {
	size := targets.SectorSize
	d.View(Live, func(t *Table) error { size = t.LogicalBlockSize(); return nil })
	return size
}
