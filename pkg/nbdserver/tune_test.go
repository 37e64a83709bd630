package nbdserver

import (
	"testing"
	"time"
)

// simTraffic drives a tuner with 4 KiB requests, 32 per read turn, on a
// fake clock where each request takes cost(setting) to serve, and returns
// the setting after turns turns.
func simTraffic(t *testing.T, tu *tuner, clock *time.Duration, turns int, cost func(setting uint8) time.Duration) uint8 {
	t.Helper()
	now := func() time.Duration { return *clock }
	setting := tu.cur
	for range turns {
		*clock += 32 * cost(setting)
		setting = tu.count(32, 32*4096, allKnobs, now)
		if setting&^tu.mask != tu.cur&^tu.mask {
			t.Fatalf("setting %03b changed knobs outside the mask %03b", setting, tu.mask)
		}
	}
	return setting
}

// turnsPerWindow is how many 32-request turns of 4 KiB make a window.
const turnsPerWindow = windowUnits / (32 * (requestUnits + 4096))

// The tuner keeps the faster setting, whichever it is, and changes its
// mind when the one it keeps becomes slower. (Broken once by comparing the
// probe the wrong way round: it then settled on the slow setting and the
// test failed.)
func TestTunerFollowsTheFasterSetting(t *testing.T) {
	slowReaderServes := true
	cost := func(s uint8) time.Duration {
		d := 10 * time.Microsecond
		if (s&knobReaderServes != 0) == slowReaderServes {
			d = 13 * time.Microsecond
		}
		if s&knobSplice != 0 { // no effect on 4 KiB requests: noise only
			d += 50 * time.Nanosecond
		}
		return d
	}
	tu := newTuner(knobReaderServes|knobSplice, knobReaderServes|knobSplice)
	var st Stats
	tu.stats = &st
	var clock time.Duration
	// The warm-up probes each knob after a few windows (reader-serves twice:
	// a win must be confirmed).
	simTraffic(t, tu, &clock, 6*probeWindows*turnsPerWindow, cost)
	if tu.best&knobReaderServes != 0 {
		t.Fatalf("reader-serves is slower, yet the tuner kept it (setting %03b)", tu.best)
	}
	checkTunerStats(t, &st, knobReaderServes, 2, 1, 0)
	// Handing over becomes the slower way (another machine, another
	// load): within the longest wait between probes, plus the probes,
	// the tuner turns reader-serves back on.
	slowReaderServes = false
	simTraffic(t, tu, &clock, (2*maxExploit+12*probeWindows)*turnsPerWindow, cost)
	if tu.best&knobReaderServes == 0 {
		t.Fatalf("handing over became slower, yet the tuner kept it (setting %03b)", tu.best)
	}
	checkTunerStats(t, &st, knobReaderServes, 4, 1, 1)
	if n := &st.TunerSwitches[knobIndex(knobSplice)]; n[0].Load()+n[1].Load() != 0 {
		t.Fatalf("splicing, which changes nothing here, was switched %d off and %d on", n[0].Load(), n[1].Load())
	}
}

// checkTunerStats fails unless st counts at least wins won probes of knob,
// and exactly off and on switches of it.
func checkTunerStats(t *testing.T, st *Stats, knob uint8, wins, off, on uint64) {
	t.Helper()
	i := knobIndex(knob)
	if w := st.TunerProbes[i][1].Load(); w < wins {
		t.Errorf("%s: %d won probes counted, want at least %d", KnobNames[i], w, wins)
	}
	if f, n := st.TunerSwitches[i][0].Load(), st.TunerSwitches[i][1].Load(); f != off || n != on {
		t.Errorf("%s: switched off %d and on %d times, want %d and %d", KnobNames[i], f, n, off, on)
	}
}

// Equal settings are left alone: noise within probeMargin flips nothing.
func TestTunerKeepsSettingWhenEqual(t *testing.T) {
	tu := newTuner(knobReaderServes|knobSplice|knobSpin, knobReaderServes|knobSplice|knobSpin)
	flips := 0
	var last uint8 = tu.best
	var clock time.Duration
	now := func() time.Duration { return clock }
	for i := range 2000 * turnsPerWindow {
		// Alternating windows are 0.4% apart, whatever the setting.
		d := 10 * time.Microsecond
		if (i/turnsPerWindow)%2 == 0 {
			d += 40 * time.Nanosecond
		}
		clock += 32 * d
		tu.count(32, 32*4096, allKnobs, now)
		if tu.best != last {
			flips++
			last = tu.best
		}
	}
	if flips != 0 {
		t.Fatalf("the kept setting changed %d times between equal settings", flips)
	}
}

// A window spanning a pause of the client is not counted against the
// setting that happened to be in use.
func TestTunerDropsPausedWindows(t *testing.T) {
	tu := newTuner(knobReaderServes, knobReaderServes)
	var clock time.Duration
	now := func() time.Duration { return clock }
	for i := range 200 * turnsPerWindow {
		d := 10 * time.Microsecond
		if tu.cur&knobReaderServes != 0 && i%turnsPerWindow == 0 {
			d = time.Second / 32 // the client paused: a window of over maxWindow
		}
		clock += 32 * d
		tu.count(32, 32*4096, allKnobs, now)
	}
	if tu.best&knobReaderServes == 0 {
		t.Fatal("pauses of the client counted against the setting in use")
	}
}

// A connection with nothing to tune never reads the clock.
func TestTunerWithoutKnobs(t *testing.T) {
	tu := newTuner(0, knobReaderServes)
	for range 1000 {
		if s := tu.count(32, 1<<20, allKnobs, func() time.Duration { t.Fatal("clock read"); return 0 }); s != knobReaderServes {
			t.Fatalf("setting %03b, want %03b", s, knobReaderServes)
		}
	}
}

// A probed setting so slow that its windows run past maxWindow ends the
// probe at once, back to the setting kept: it is never kept, and the
// tuner is not stuck in it.
func TestTunerAbandonsVerySlowProbe(t *testing.T) {
	tu := newTuner(knobReaderServes, knobReaderServes)
	cost := func(s uint8) time.Duration {
		if s&knobReaderServes == 0 {
			return 100 * time.Millisecond
		}
		return 10 * time.Microsecond
	}
	slow := 0
	var clock time.Duration
	for range 20 {
		if simTraffic(t, tu, &clock, turnsPerWindow, cost)&knobReaderServes == 0 {
			slow++
		}
	}
	if slow > 2 || tu.best&knobReaderServes == 0 {
		t.Fatalf("%d of 20 windows in the very slow setting (kept: %03b)", slow, tu.best)
	}
}

// One probe's win is not enough: a setting that looked faster during one
// probe only (a neighbour's burst) is not kept, because the probe that
// must confirm it finds the two equal. (Broken once by switching on the
// first win: the tuner then kept the setting that was faster only once.)
func TestTunerNeedsTwoWins(t *testing.T) {
	tu := newTuner(knobReaderServes, knobReaderServes)
	var clock time.Duration
	turns := 0
	firstProbeEnd := (warmWindows + 1 + 2*probeWindows) * turnsPerWindow
	cost := func(s uint8) time.Duration {
		turns++
		if s&knobReaderServes == 0 && turns <= firstProbeEnd {
			return 7 * time.Microsecond // handing over looks faster, once
		}
		return 10 * time.Microsecond
	}
	var st Stats
	tu.stats = &st
	simTraffic(t, tu, &clock, 3*firstProbeEnd, cost)
	if tu.best&knobReaderServes == 0 {
		t.Fatal("the tuner switched on a single probe's win")
	}
	// Counted: the win, the probe that did not confirm it, no switch.
	checkTunerStats(t, &st, knobReaderServes, 1, 0, 0)
	if l := st.TunerProbes[knobIndex(knobReaderServes)][0].Load(); l == 0 {
		t.Error("the probe that did not confirm the win was not counted as lost")
	}
}

// A probe whose flipped setting is plainly slower ends after losingPairs
// pairs of windows rather than probeWindows: splicing 1 MiB reads into TCP
// ran at half speed here, and every window of a probe spent there is lost
// throughput. (Broken once by never ending a probe early: 21 windows of 3
// probes were spliced, and the test failed.)
func TestTunerCutsLosingProbeShort(t *testing.T) {
	tu := newTuner(knobSplice, 0)
	var clock time.Duration
	now := func() time.Duration { return clock }
	slowTurns, probes := 0, 0
	for range 200 * turnsPerWindow {
		d := 10 * time.Microsecond
		if tu.cur&knobSplice != 0 {
			d *= 2
			slowTurns++
		}
		clock += 32 * d
		probing := tu.probing
		tu.count(32, 32*4096, allKnobs, now)
		if tu.probing && !probing {
			probes++
		}
	}
	if tu.best&knobSplice != 0 {
		t.Fatal("the slower setting was kept")
	}
	if probes < 2 {
		t.Fatalf("%d probes in 200 windows", probes)
	}
	if got := slowTurns / turnsPerWindow; got > probes*losingPairs {
		t.Fatalf("%d windows in the slower setting over %d probes, want at most %d", got, probes, probes*losingPairs)
	}
}

// A knob the traffic cannot feel is not probed: over TCP, 1 MiB writes
// once kept splicing on after two probes whose noise favoured it (8%
// apart), and the next large reads ran spliced. Here splicing looks 20%
// faster, yet no request could be spliced: the tuner never tries it, and
// still probes the other knobs. (Broken once by probing every knob in the
// mask: splicing was kept, and the test failed.)
func TestTunerLeavesUnfeltKnobs(t *testing.T) {
	tu := newTuner(knobReaderServes|knobSplice, knobReaderServes)
	var clock time.Duration
	now := func() time.Duration { return clock }
	probes := 0
	for range 400 * turnsPerWindow {
		d := 10 * time.Microsecond
		if tu.cur&knobSplice != 0 {
			d = 8 * time.Microsecond
		}
		clock += 32 * d
		probing := tu.probing
		tu.count(32, 32*4096, knobReaderServes|knobSpin, now)
		if tu.cur&knobSplice != 0 {
			t.Fatalf("splicing tried (setting %03b) though no request could feel it", tu.cur)
		}
		if tu.probing && !probing {
			probes++
		}
	}
	if probes < 2 {
		t.Fatalf("%d probes of reader-serves in 400 windows", probes)
	}
}

// Only reads that may be spliced make a batch touch knobSplice.
func TestBatchTouches(t *testing.T) {
	for _, tc := range []struct {
		typ    uint16
		length uint32
		splice bool
	}{
		{cmdRead, 1 << 20, true},
		{cmdRead, spliceMin, true},
		{cmdRead, spliceMin - 1, false},
		{cmdRead, 2 * pipeSize, false},
		{cmdWrite, 1 << 20, false},
	} {
		items := []work{{r: request{typ: cmdRead, length: 4096}}, {r: request{typ: tc.typ, length: tc.length}}}
		n, touches := batchBytes(items)
		if n != 4096+int64(tc.length) || (touches&knobSplice != 0) != tc.splice || touches&knobReaderServes == 0 {
			t.Errorf("cmd %d of %d bytes: %d bytes, touches %03b; want splice %v", tc.typ, tc.length, n, touches, tc.splice)
		}
	}
}
