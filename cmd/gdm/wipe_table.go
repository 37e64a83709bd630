package main

import "io"

func init() {
	register("wipe_table", verb{
		usage: "wipe_table NAME [--timeout D]",
		help:  "replace the live table with error targets of the same size, after the I/O in flight (dmsetup wipe_table): new I/O fails, backing devices are let go",
		run:   runWipeTable,
	})
}

func runWipeTable(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("wipe_table")
	var cf clientFlags
	cf.register(fs, true)
	timeout := fs.Duration("timeout", 0, "how long to wait for in-flight I/O (default 30s); past it nothing is changed")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	q, err := waitQuery("", false, *timeout)
	if err != nil {
		return err
	}
	return postDevice(cf, stdout, pos[0], "wipe_table", q, nil)
}
