package main

import (
	"io"
	"net/url"
)

func init() {
	register("create", verb{
		usage: "create NAME [--table-file F|--table L...] [--read-only] [--uuid U]",
		help:  "make a device; its table goes live at once",
		run:   runCreate,
	})
}

func runCreate(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newFlagSet("create")
	var cf clientFlags
	var tf tableFlags
	cf.register(fs, true)
	tf.register(fs)
	readOnly := fs.Bool("read-only", false, "refuse writes; open backing devices read-only")
	uuid := fs.String("uuid", "", "the device's uuid (default: a random one)")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	text, err := tf.read(stdin)
	if err != nil {
		return onDevice(pos[0], err)
	}
	q := url.Values{"name": {pos[0]}}
	if *uuid != "" {
		q.Set("uuid", *uuid)
	}
	if *readOnly {
		q.Set("read_only", "1")
	}
	return postTable(cf, stdout, pos[0], "/v1/devices", q, text)
}
