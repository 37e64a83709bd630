package main

import "io"

func init() {
	register("clear", verb{
		usage: "clear NAME",
		help:  "destroy the device's inactive table",
		run:   runClear,
	})
}

func runClear(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("clear")
	var cf clientFlags
	cf.register(fs, true)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	return postDevice(cf, stdout, pos[0], "clear", nil, nil)
}
