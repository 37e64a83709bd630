package nbdserver

import (
	"slices"
	"time"
)

// Tuning: each connection chooses how it serves by measuring its own
// traffic, not by thresholds tuned on one machine.
//
// Three choices trade costs that differ from machine to machine: serving
// cheap batches in the reader (reader-serves) or handing the read turn to another
// worker; sending large reads by splicing or by pread and writev; spinning
// on an empty TCP socket or parking. Each was a threshold tuned on one
// machine. On a shared 2-core VM (a syscall about 2 us, a context switch
// several) the old rule, reader-serves below 10 us of measured service time,
// flapped: a 4 KiB write takes a few microseconds, and a neighbour's load
// (or the metrics' clock reads) pushed the average over the line, so 5-25%
// of read turns were handed over, each a wake-up. Whether splicing beats
// copying 1 MiB reads differed between that machine and the one the
// thresholds came from. So the connection times windows of its traffic
// under its setting, now and then flips one choice for a few windows (a
// probe), and keeps the flip if those ran clearly faster.

// Knobs: the choices a tuner makes, as bits of a setting.
const (
	knobReaderServes = 1 << iota // the reader serves cheap batches itself (see readerServesMax)
	knobSplice                   // reads of spliceMin and more are spliced when the export can
	knobSpin                     // the TCP reader spins on an empty socket (see spinReader)
	knobPipeWrite                // writes of spliceMin and more go through a pipe into the file (PipeWriter)

	allKnobs = knobReaderServes | knobSplice | knobSpin | knobPipeWrite
	numKnobs = 4
)

const (
	// A window is at least windowUnits of work and windowReqs requests;
	// a request counts as requestUnits plus the bytes it moves, so a
	// window is about 1000 4 KiB requests or 32 1 MiB ones: 5-20 ms here.
	windowUnits  = 8 << 20
	windowReqs   = 32
	requestUnits = 4096
	// maxWindow: a window that took longer spanned a pause of the client
	// and says nothing about the setting; it is dropped.
	maxWindow = 250 * time.Millisecond
	// probeWindows windows are timed for each side of a comparison; their
	// medians are compared, so that a window or two spoiled by a neighbour
	// do not decide.
	probeWindows = 7
	// exploitWindows is the least number of windows between probes, and
	// maxExploit the most: a probe that loses doubles the wait before the
	// next, so a settled connection spends little time in worse settings.
	exploitWindows = 64
	maxExploit     = 1024
	// probeMargin: a probe wins only if its median window is this much
	// faster. The real differences found were 20-60% (hand-over against
	// reader-serves for 4 KiB reads over TCP, splicing against copying 1 MiB
	// reads); noise on the shared VM, at a load average of 7-10, made 5%
	// flip 4 KiB writes between reader-serves and hand-over and back every few
	// probes. A flip that was wrong is undone when a later probe of that
	// knob finds the other way clearly faster.
	probeMargin = 0.10
	// losingPairs: a probe whose flipped setting lost each of its first
	// losingPairs pairs of windows by over probeMargin ends there, lost
	// (see losingClearly).
	losingPairs = 3
)

// startSetting is a connection's setting before its tuner has measured
// anything: every knob on, except splicing reads and the reader serving
// its own batches on TCP, and writing from pipes on UNIX sockets.
//
// The start is a guess the tuner corrects (its first probes, one per knob,
// end within about a second of traffic), but a benchmark of a few seconds,
// or a short-lived client, runs mostly on it. Copying is the better guess
// for TCP on any machine, because what makes splicing lose there is in the
// kernel, not in the CPU: a splice hands a socket the pipe's pages at most
// 16 at a time (fs/splice.c, splice_to_socket), each batch a sendmsg of its own, TCP
// holds the pages by reference until they are acknowledged, and the reply's
// header goes out ahead of them as a write of its own; a copy hands TCP
// header and data in one writev, which it cuts into full segments. A UNIX
// socket has no segments, acknowledgements or pushes. Measured on the
// 2-core EPYC VM (Linux 6.18), the tuner's probes of 1 MiB reads ran spliced
// windows 2x slower than copied ones over TCP, and copied windows 2x slower
// than spliced ones over a UNIX socket.
//
// Writes from a pipe (knobPipeWrite) go the other way, for the same kind
// of reason: splicing a TCP socket into a pipe hands over the pages the
// segments arrived in, while a UNIX socket's splice takes one skb per
// call, and a 1 MiB payload then costs many calls. Measured on the same
// VM (bench/ab.sh, 1 MiB writes, qd8, 4 rounds), writing from the pipe
// ran +9% requests at -14% CPU each over TCP, and -6% at +9% over a
// UNIX socket.
//
// The reader serving its own batches (knobReaderServes) starts off on
// TCP. A TCP read costs the stack's receive path, and a reader that
// serves its batch reads again as soon as it has replied, finding the
// request or two the client sent meanwhile: its batches stay small.
// Handed to a worker, the batch is served while the reader waits for
// more, and the batches grow. Measured on the 2-core EPYC VM (Linux
// 6.18, fio 4 KiB random writes qd32 over loopback TCP, the setting
// pinned): 0.55-0.63 reads and 0.35-0.39 writevs a request handed over,
// against 0.83-0.86 and 0.51-0.58 with the reader serving, and 10-40%
// more requests in 9 of 10 rounds; 4 KiB reads level, 1 MiB reads and
// writes +5-27% in 5 rounds of 6. Over a UNIX socket the reader serving
// wins 1 MiB writes (+10-14%, 3 of 3) and stays on. The tuner's probe of
// the knob (a flip of alternate windows of ~17 ms) finds the TCP
// difference in some connections and not in others (a median 4-5% apart
// against the 10% margin), so the start decides most of a short run.
func startSetting(tcp bool) uint8 {
	if tcp {
		return knobSpin | knobPipeWrite
	}
	return knobReaderServes | knobSplice | knobSpin
}

// tuner picks a connection's setting. It is used by one goroutine at a
// time (the reader, under rmu); the connection publishes its setting for
// the others (conn.knobs).
//
// A probe alternates windows of best and of best with one knob flipped, so
// that both sides see the same load (the machine is shared, and a client's
// pace drifts), and compares their medians.
type tuner struct {
	mask uint8 // the knobs that apply to this connection
	best uint8 // the setting kept between probes
	cur  uint8 // the setting in use: best, or best with one knob flipped
	flip uint8 // the knob the next (or current) probe flips

	// The window being timed.
	began       time.Duration // monotonic clock at its start; < 0: none yet
	reqs, units int64
	touched     uint8 // knobs its requests could feel (count's touches)
	felt        uint8 // touched, of the last window ended

	skip       int                   // windows still to drop at the start (warming up)
	probing    bool                  // in a probe: cur alternates, starting flipped
	confirming bool                  // the flip won the last probe: this one must confirm it
	n          int                   // windows timed in this probe
	left       int                   // windows of best before the next probe
	wait       int                   // windows between probes now (exploitWindows..maxExploit)
	warm       int                   // probes still to make at the short interval
	tried      [probeWindows]float64 // the flipped setting's windows, ns per unit
	kept       [probeWindows]float64 // best's windows, in between

	stats *Stats // where probes and switches are counted; nil: nowhere
}

// warmWindows are dropped at a connection's start: its first requests pay
// for growing stacks and buffers, whatever the setting.
const warmWindows = 2

// newTuner starts with setting start, tuning the knobs in mask (the others
// keep their value in start). Its first probes come quickly, one per knob,
// so that a short-lived connection still finds a good setting; later ones
// come every exploitWindows to maxExploit windows.
func newTuner(mask, start uint8) *tuner {
	t := &tuner{mask: mask, best: start, cur: start, began: -1, skip: warmWindows, wait: exploitWindows}
	t.flip = lowestBit(mask)
	for m := mask; m != 0; m &= m - 1 {
		t.warm++
	}
	return t
}

// lowestBit is m's lowest set bit, or 0.
func lowestBit(m uint8) uint8 { return m & -m }

// nextKnob is the knob after k in mask, round robin.
func (t *tuner) nextKnob(k uint8) uint8 {
	for b := k << 1; b != 0; b <<= 1 {
		if t.mask&b != 0 {
			return b
		}
	}
	return lowestBit(t.mask)
}

// count adds a read turn's requests and bytes to the window and returns
// the setting to use from now on. touches are the knobs whose setting
// these requests could feel (splicing: only reads of spliceMin and more).
// now is read only when a window ends.
func (t *tuner) count(reqs int, bytes int64, touches uint8, now func() time.Duration) uint8 {
	if t.mask == 0 {
		return t.cur
	}
	t.reqs += int64(reqs)
	t.units += int64(reqs)*requestUnits + bytes
	t.touched |= touches
	if t.began >= 0 && (t.units < windowUnits || t.reqs < windowReqs) {
		return t.cur
	}
	at := now()
	if t.began >= 0 {
		if d := at - t.began; d > 0 && d <= maxWindow {
			t.windowDone(float64(d) / float64(t.units))
		} else if t.probing {
			// A pause, or a setting far slower than best: either way
			// this probe can no longer be fair. Back to best.
			t.probing, t.cur, t.left = false, t.best, t.wait
		}
	}
	t.began, t.reqs, t.units = at, 0, 0
	t.felt, t.touched = t.touched, 0
	return t.cur
}

// windowDone records a timed window's cost per unit and moves the tuning on.
func (t *tuner) windowDone(cost float64) {
	switch {
	case t.skip > 0:
		t.skip--
	case !t.probing:
		if t.left--; t.left > 0 {
			break
		}
		if t.felt&t.flip == 0 {
			// The traffic cannot feel this knob (no large reads, for
			// splicing): a probe would time noise, and a noise win
			// kept would be a setting never measured. Try the next
			// knob at the next window.
			t.flip, t.left = t.nextKnob(t.flip), 1
			break
		}
		t.probing, t.n = true, 0
		t.cur = t.best ^ t.flip
	default:
		if t.n%2 == 0 {
			t.tried[t.n/2] = cost
			t.cur = t.best
		} else {
			t.kept[t.n/2] = cost
			t.cur = t.best ^ t.flip
		}
		if t.n++; t.n == 2*probeWindows {
			t.decide()
		} else if t.n%2 == 0 && t.losingClearly(t.n/2) {
			t.end(false)
		}
	}
}

// losingClearly reports whether the flipped setting lost each of the
// probe's first pairs windows by over probeMargin, and there are at least
// losingPairs of them: the probe then ends early, lost. Its windows are
// the ones spent in a worse setting, and a probe of splicing over TCP, say,
// ran its flipped windows at half speed; cutting it short keeps a probe's
// cost small where the answer is plain. Only a loss ends a probe early:
// ending one lost keeps the setting, so it cannot make a setting flap.
func (t *tuner) losingClearly(pairs int) bool {
	if pairs < losingPairs {
		return false
	}
	for i := range pairs {
		if t.tried[i] <= t.kept[i]*(1+probeMargin) {
			return false
		}
	}
	return true
}

// decide ends a probe. The flipped setting becomes best if its median
// window beat best's by probeMargin in two probes in a row: after a first
// win the same knob is probed again at once. A win made by noise seldom
// comes twice; a real one does.
func (t *tuner) decide() {
	tried, kept := medianOf(t.tried), medianOf(t.kept)
	t.end(tried < kept*(1-probeMargin))
}

// end ends a probe that the flipped setting won or lost.
func (t *tuner) end(won bool) {
	t.cur = t.best
	t.probing = false
	t.noteProbe(won)
	if won && !t.confirming {
		t.confirming, t.left = true, 1 // probe the same knob again
		return
	}
	t.confirming = false
	if won {
		t.best ^= t.flip
		t.cur = t.best
		t.noteSwitch()
		t.wait = exploitWindows
	} else {
		t.wait = min(2*t.wait, maxExploit)
	}
	t.flip = t.nextKnob(t.flip)
	t.left = t.wait
	if t.warm > 0 {
		t.warm--
		t.left = 1
		if t.warm == 0 {
			t.wait = exploitWindows
		}
	}
}

// medianOf is the median of one side of a probe's windows.
func medianOf(v [probeWindows]float64) float64 {
	slices.Sort(v[:]) // v is a copy
	return v[probeWindows/2]
}

// monoEpoch makes monoNow a cheap monotonic clock: time.Since reads only
// the monotonic counter, where time.Now reads the wall clock too.
var monoEpoch = time.Now()

func monoNow() time.Duration { return time.Since(monoEpoch) }
