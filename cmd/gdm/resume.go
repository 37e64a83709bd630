package main

import "io"

func init() {
	register("resume", verb{
		usage: "resume NAME [--live] [--timeout D]",
		help:  "swap in the inactive table if any, release suspended I/O",
		run:   runResume,
	})
}

func runResume(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("resume")
	var cf clientFlags
	cf.register(fs, true)
	live := fs.Bool("live", false, "swap without waiting for in-flight I/O on the old table (it is destroyed when it drains)")
	timeout := fs.Duration("timeout", 0, "how long to wait for in-flight I/O (default 30s)")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	q, err := waitQuery("live", *live, *timeout)
	if err != nil {
		return err
	}
	return postDevice(cf, stdout, pos[0], "resume", q, nil)
}
