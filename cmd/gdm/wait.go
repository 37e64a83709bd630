package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("wait", verb{
		usage: "wait NAME [EVENT_NR] [--timeout D]",
		help:  "sleep until the device's event number is not EVENT_NR (default 0), then print it (dmsetup wait)",
		run:   runWait,
	})
}

// waitPoll is how long one wait request may last; the verb asks again
// until its --timeout, if any.
const waitPoll = 15 * time.Second

var errWaitTimeout = errors.New("timed out: the event number did not change")

func runWait(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("wait")
	var cf clientFlags
	cf.register(fs, true)
	timeout := fs.Duration("timeout", 0, "give up (exit 1) after D (default: wait for ever)")
	pos, err := parseArgs(fs, args, 1, 2)
	if err != nil {
		return err
	}
	var after uint64
	if len(pos) == 2 {
		if after, err = strconv.ParseUint(pos[1], 10, 64); err != nil {
			return fmt.Errorf("%w: EVENT_NR %q is not a number", errUsage, pos[1])
		}
	}
	a := controlapi.New(cf.control)
	var deadline time.Time
	if *timeout > 0 {
		deadline = time.Now().Add(*timeout)
	}
	var backoff waitBackoff
	for {
		poll := waitPoll
		if !deadline.IsZero() {
			poll = min(poll, time.Until(deadline))
		}
		if poll <= 0 {
			return onDevice(pos[0], fmt.Errorf("%w from %d in %v", errWaitTimeout, after, *timeout))
		}
		q := url.Values{"after": {strconv.FormatUint(after, 10)}, "poll": {poll.String()}}
		var info controlapi.DeviceInfo
		err := a.Call(http.MethodGet, controlapi.DevicePath(pos[0], "/wait"), q, nil, &info)
		if busyWaits(err) {
			backoff.sleep(deadline)
			continue
		}
		if err != nil {
			return onDevice(pos[0], err)
		}
		backoff.reset()
		if info.EventNumber != after {
			if cf.json {
				return printJSON(stdout, info)
			}
			_, err := fmt.Fprintln(stdout, info.EventNumber)
			return err
		}
	}
}

// busyWaits reports whether the daemon refused a wait because as many as
// it serves at once are waiting (it bounds them: each holds a control
// connection). dmsetup's waits have no such bound, so the verb waits for
// a slot rather than failing: event numbers only grow, so a change made
// while it was turned away is still seen by the next try.
func busyWaits(err error) bool {
	var a *controlapi.AnswerError
	return errors.As(err, &a) && a.Status == http.StatusServiceUnavailable
}

// waitBackoff spaces a refused wait's tries: from 20 ms, doubling to 1 s,
// so that a burst of waiters does not spin on the control socket, and a
// slot freed is taken within a second.
type waitBackoff struct{ d time.Duration }

func (b *waitBackoff) sleep(deadline time.Time) {
	b.d = min(max(2*b.d, 20*time.Millisecond), time.Second)
	d := b.d
	if !deadline.IsZero() {
		d = min(d, max(time.Until(deadline), 0))
	}
	time.Sleep(d)
}

func (b *waitBackoff) reset() { b.d = 0 }
