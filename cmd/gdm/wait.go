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
		if err := a.Call(http.MethodGet, controlapi.DevicePath(pos[0], "/wait"), q, nil, &info); err != nil {
			return onDevice(pos[0], err)
		}
		if info.EventNumber != after {
			if cf.json {
				return printJSON(stdout, info)
			}
			_, err := fmt.Fprintln(stdout, info.EventNumber)
			return err
		}
	}
}
