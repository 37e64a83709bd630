package table

import "github.com/gdm-project/gdm/pkg/targets"

// What the targets' devices leave a table: dm asks each target's devices
// (iterate_devices) whether they take discards and write-zeroes, and a
// table takes either only where every target's devices do. A target that
// takes discards on its own (targets.SelfDiscarder: log-writes) is not
// asked for discards. The answers come from the areas each target noted
// as it was made, so a million-target table asks as it is built, once
// per area, and keeps two bits.
type devCaps struct {
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
		if !self && !a.Dev.SupportsDiscard() {
			c.noDiscard = true
		}
		if !a.Dev.SupportsWriteZeroes() {
			c.noWriteZeroes = true
		}
	}
}
