package oracle

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Timing is compared where a target's behaviour is time itself: delay
// holds each I/O for its class's delay, and flakey fails or mangles I/O in
// the down part of its cycle. Both run in one TCG guest, gdm behind the
// kernel's nbd client, so an op's elapsed time is its delay plus an
// overhead that under TCG on a loaded host is milliseconds and sometimes
// far more. The checks are built so that such jitter cannot flip them:
//
//   - a lower bound on every delayed op of gdm: elapsed >= delay; on dm's
//     side, on the longest op of each class (less one jiffy, dmTick): a
//     TCG guest whose vCPU the host stalled catches up on its ticks at
//     once, and a jiffy timer armed from a stale jiffies count fires
//     early by the stall (seen: 32 ms for a 70 ms delay at load 13);
//   - an upper bound on gdm only, and on the least overhead of each class
//     over its ops (several per class), so that one stalled op cannot fail
//     it: gdmSlack;
//   - flakey's ops are held until well inside an up or down interval (At)
//     and must have finished well before it ends (Until), both measured
//     from the side's own table load, whose exact moment lies between the
//     call's start and its return: At counts from the return, Until from
//     the start, so the op ran inside its window whenever it happened.
const (
	// dmTick is how early dm's delay may let an op go: it arms a jiffy
	// timer (HZ=250 in Debian's kernel), so a delay can end up to one
	// jiffy short of its milliseconds.
	dmTick = 4 * time.Millisecond
	// gdmSlack bounds gdm's least overhead per delay class: a request's
	// round trip through nbd to the daemon under TCG, measured here at
	// 5-20 ms, and up to 52 ms with 2 cores at load 13. It catches gross
	// errors (a second where a millisecond was meant, delays added up
	// across several classes); a class given another class's delay is
	// caught by the lower bounds instead, since two cases order the
	// classes opposite ways.
	gdmSlack = 150 * time.Millisecond
)

// loadTime brackets the moment a side's table was constructed.
type loadTime struct{ before, after time.Time }

// timing is a Runner's timing state for one case.
type timing struct {
	loaded [2]loadTime
	// least is each side's least overhead (elapsed - delay) per delay,
	// most its longest elapsed time per delay.
	least, most [2]map[time.Duration]time.Duration
	// busy is 1 + the side whose I/O op is in flight, 0 when none: a
	// guest's watch tells by it whether a hung case waits on dm or on
	// gdm (Runner.InFlight).
	busy atomic.Int32
}

func (t *timing) reset() {
	t.least = [2]map[time.Duration]time.Duration{{}, {}}
	t.most = [2]map[time.Duration]time.Duration{{}, {}}
}

// load runs f, a table load on side i, and notes when it happened.
func (t *timing) load(i int, f func() error) error {
	before := time.Now()
	err := f()
	if err == nil {
		t.loaded[i] = loadTime{before, time.Now()}
	}
	return err
}

// do runs an I/O op on side i's device: it waits for op.At, times the op,
// and says whether it ran outside its window ("" when inside).
func (t *timing) do(i int, d *Device, op Op) (Result, string) {
	if op.At > 0 {
		time.Sleep(time.Until(t.loaded[i].after.Add(op.At))) // the op's place in time is what is tested
	}
	start := time.Now()
	t.busy.Store(int32(i) + 1)
	r := d.Do(op)
	t.busy.Store(0)
	r.Elapsed = time.Since(start)
	late := ""
	if op.Until > 0 {
		if ran := time.Since(t.loaded[i].before); ran > op.Until {
			late = fmt.Sprintf("finished %v after its table's load, past %v: the guest was too slow to place it", ran.Round(time.Millisecond), op.Until)
		}
	}
	if op.Delay > 0 {
		over := r.Elapsed - op.Delay
		if least, ok := t.least[i][op.Delay]; !ok || over < least {
			t.least[i][op.Delay] = over
		}
		t.most[i][op.Delay] = max(t.most[i][op.Delay], r.Elapsed)
	}
	return r, late
}

// checkDelay is "" when side B (gdm) took at least op's delay, else how
// long it took. dm is checked per class, in summary.
func checkDelay(op Op, nameB string, rb Result) string {
	if op.Delay == 0 || rb.Elapsed >= op.Delay {
		return ""
	}
	return fmt.Sprintf("delay shorter than %v: %s took %v", op.Delay, nameB, rb.Elapsed.Round(time.Millisecond))
}

// summary reports each delay class's least overhead on both sides (a
// note), and as a difference a class where gdm's exceeds gdmSlack or
// where no op on a side took the delay (dm one jiffy less).
func (t *timing) summary(rep *Report, nameA, nameB string) {
	var delays []time.Duration
	for d := range t.least[1] {
		delays = append(delays, d)
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	var parts []string
	for _, d := range delays {
		a, b := t.least[0][d], t.least[1][d]
		parts = append(parts, fmt.Sprintf("%v: %s +%v, %s +%v", d, nameA, a.Round(100*time.Microsecond), nameB, b.Round(100*time.Microsecond)))
		if b > gdmSlack {
			rep.addf("delay %v: %s's least overhead over the class's ops is %v, more than %v", d, nameB, b.Round(time.Millisecond), gdmSlack)
		}
		for i, name := range []string{nameA, nameB} {
			if most := t.most[i][d]; most < d-dmTick {
				rep.addf("delay %v: no op on %s took it (the longest %v)", d, name, most.Round(time.Millisecond))
			}
		}
	}
	if len(parts) > 0 {
		rep.Notes = append(rep.Notes, "least overhead per delay: "+strings.Join(parts, "; "))
	}
}
