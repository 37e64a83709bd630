package nbdserver

import "math/bits"

// What the tuners did, for metrics: an operator (or a benchmark) sees
// whether the connections kept their start setting or changed it, and
// how often a knob's probes went each way.

// KnobNames name the knobs, lowest bit first, for metrics labels
// (Stats.TunerProbes, Stats.TunerSwitches).
var KnobNames = [numKnobs]string{"reader_serves", "splice", "spin", "pipe_write"}

// A knob added past numKnobs would index past KnobNames and the Stats
// arrays: this fails to compile then (a constant index out of range).
var _ = [1]struct{}{}[allKnobs>>numKnobs]

// knobIndex is knob k's index in KnobNames.
func knobIndex(k uint8) int { return bits.TrailingZeros8(k) }

// noteProbe counts a probe of t.flip that ended, won or lost.
func (t *tuner) noteProbe(won bool) {
	if t.stats != nil {
		t.stats.TunerProbes[knobIndex(t.flip)][oneIf(won)].Add(1)
	}
}

// noteSwitch counts t.best's change of t.flip, on or off.
func (t *tuner) noteSwitch() {
	if t.stats != nil {
		t.stats.TunerSwitches[knobIndex(t.flip)][oneIf(t.best&t.flip != 0)].Add(1)
	}
}

// oneIf is 1 if b, else 0: an index into a [2] of Stats.
func oneIf(b bool) int {
	if b {
		return 1
	}
	return 0
}
