package table

import "github.com/gdm-project/gdm/pkg/targets"

// What the targets' devices leave a table: dm asks each target's devices
// (iterate_devices) for their logical block size, which the table's
// stacks (dm_set_device_limits), and whether they take discards and
// write-zeroes, which a table takes only where every target's devices do.
// A target that takes discards on its own (targets.SelfDiscarder:
// log-writes) is not asked for discards. The devices asked are the areas
// each target noted as it was made, not every device it opened: log-writes
// lists its data device only, so a log device of 4 KiB blocks leaves the
// table's blocks at its data device's. A million-target table asks as it
// is built, once per area, and keeps an int and two bits.
type devCaps struct {
	// blockSize is the largest logical block size of the devices, or 0.
	blockSize int
	// noDiscard: a target that discards on its devices has one that
	// takes no discards.
	noDiscard bool
	// noWriteZeroes: a target has a device that takes no write-zeroes.
	noWriteZeroes bool
}

// stack adds target tg's areas.
func (c *devCaps) stack(tg targets.Target, areas []targets.Area) {
	self := false
	if s, ok := tg.(targets.SelfDiscarder); ok {
		self = s.DiscardsWithoutDevices()
	}
	for _, a := range areas {
		c.blockSize = max(c.blockSize, int(a.Dev.LogicalBlockSize()))
		if !self && !a.Dev.SupportsDiscard() {
			c.noDiscard = true
		}
		if !a.Dev.SupportsWriteZeroes() {
			c.noWriteZeroes = true
		}
	}
}
