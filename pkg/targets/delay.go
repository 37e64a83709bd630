package targets

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"
)

// delayTarget is dm-delay: `delay <dev> <offset> <delay ms> [<write dev>
// <write offset> <write delay ms> [<flush dev> <flush offset> <flush delay
// ms>]]`. Reads, writes and flushes each go to their class's device at its
// offset after waiting its delay. With 3 args all three classes use the
// first triple; with 6, flushes use the write triple (as dm's constructor
// fills its classes). A class with delay 0 passes straight through.
type delayTarget struct {
	classes [numDelayClasses]delayClass
	queue   *delayQueue
	faults  FaultStats
}

// delayClass is where one class of requests goes and how long it waits.
type delayClass struct {
	dev    *Dev
	offset int64 // bytes
	delay  time.Duration
}

var (
	_ Target         = (*delayTarget)(nil)
	_ FlushRequester = (*delayTarget)(nil)
	_ Suspender      = (*delayTarget)(nil)
	_ Resumer        = (*delayTarget)(nil)
	_ Destroyer      = (*delayTarget)(nil)
	_ FaultCounter   = (*delayTarget)(nil)
)

func init() {
	register(&Type{Name: "delay", Version: [3]uint32{1, 3, 0}, Check: checkDelay, New: newDelay,
		Syntax:  "<dev> <offset> <ms> [<write dev> <write offset> <write ms> [<flush dev> <flush offset> <flush ms>]]",
		Summary: "linear, with reads, writes and flushes each held back by a delay (dm-delay)"})
}

// delayClassNames name the triples in errors, in table order.
var delayClassNames = [numDelayClasses]string{"read", "write", "flush"}

// checkDelay takes 3, 6 or 9 args: one <dev> <offset> <delay> triple per
// class given. Each dev and offset is checked as linear's are; a delay is
// dm's unsigned int of milliseconds. The canonical form keeps as many
// triples as were given, as dm's TABLE status prints them.
func checkDelay(args []string, sectors uint64) ([]string, error) {
	if n := len(args); n != 3 && n != 6 && n != 9 {
		return nil, fmt.Errorf("%w: delay requires exactly 3, 6 or 9 arguments, got %d", ErrArgCount, n)
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i += 3 {
		name := delayClassNames[i/3]
		devOff, err := checkLinear(args[i:i+2], sectors)
		if err != nil {
			return nil, fmt.Errorf("%s device: %w", name, err)
		}
		ms, err := ParseNumber(args[i+2])
		if err == nil && ms > math.MaxUint32 {
			err = fmt.Errorf("%w: %d ms (at most %d)", ErrOverflow, ms, uint64(math.MaxUint32))
		}
		if err != nil {
			return nil, fmt.Errorf("%s delay: %w", name, err)
		}
		out = append(out, devOff[0], devOff[1], strconv.FormatUint(ms, 10))
	}
	return out, nil
}

func newDelay(args []string, sectors uint64, devs *DevSet) (Target, error) {
	t, err := newDelayWith(args, sectors, devs, realDelayClock{})
	if err != nil {
		return nil, err // not a nil *delayTarget in a non-nil Target
	}
	return t, nil
}

// newDelayWith builds a delay target on clk (a fake one in tests) from
// canonical args.
func newDelayWith(args []string, sectors uint64, devs *DevSet, clk delayClock) (*delayTarget, error) {
	t := &delayTarget{queue: newDelayQueue(clk)}
	for c := range t.classes {
		i := min(3*c, len(args)-3)       // missing triples repeat the last one given
		off, _ := ParseNumber(args[i+1]) // checked by checkDelay
		ms, _ := ParseNumber(args[i+2])
		dev, err := openSized(devs, args[i], off, sectors)
		if err != nil {
			return nil, fmt.Errorf("%s device: %w", delayClassNames[c], err)
		}
		t.classes[c] = delayClass{dev: dev, offset: int64(off) * SectorSize, delay: time.Duration(ms) * time.Millisecond}
	}
	return t, nil
}

// hold waits out class c's delay and counts the request if it was held.
func (t *delayTarget) hold(ctx context.Context, c delayClassID) (*delayClass, error) {
	cl := &t.classes[c]
	held, waited, err := t.queue.wait(ctx, c, cl.delay)
	if held {
		t.faults.AddDelay(waited)
	}
	return cl, err
}

// Status INFO is dm-delay's: how many reads, writes and flushes are being
// held right now. TABLE is the canonical args (Base's ""), which are what
// dm prints: the triples given, devices as paths where dm prints
// major:minor.
func (t *delayTarget) Status(typ StatusType) string {
	if typ != StatusInfo {
		return ""
	}
	n := t.queue.waiting()
	return fmt.Sprintf("%d %d %d", n[delayRead], n[delayWrite], n[delayFlush])
}

// Faults counts the requests held and the time they were held.
func (t *delayTarget) Faults() *FaultStats { return &t.faults }

// PreSuspend stops delaying and lets every held request go at once, as
// dm's presuspend does: a suspend never waits out the delays, and I/O that
// arrives until Resume is not delayed.
func (t *delayTarget) PreSuspend(context.Context) { t.queue.stop() }

// PreSuspendUndo delays again: the suspend failed and the table serves
// I/O as before. (dm-delay has no presuspend_undo, so in dm delays stay
// off until the next resume; gdm restores what the table had.)
func (t *delayTarget) PreSuspendUndo(context.Context) { t.queue.start() }

// PostSuspend has nothing left to do: PreSuspend emptied the queue.
func (t *delayTarget) PostSuspend(context.Context) {}

// PreResume never refuses.
func (t *delayTarget) PreResume(context.Context) error { return nil }

// Resume delays again (dm's resume).
func (t *delayTarget) Resume(context.Context) { t.queue.start() }

// Destroy releases anything still held and stops the timer. The queue has
// no goroutine of its own, so nothing else is left running.
func (t *delayTarget) Destroy() error {
	t.queue.stop()
	return nil
}
