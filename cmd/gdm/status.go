package main

import (
	"io"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("status", verb{
		usage: "status [NAME]",
		help:  "print each target's status (striped: legs and A/D per leg)",
		run:   runStatus,
	})
}

func runStatus(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("status")
	var cf clientFlags
	cf.register(fs, true)
	pos, err := parseArgs(fs, args, 0, 1)
	if err != nil {
		return err
	}
	a := controlapi.New(cf.control)
	names, err := namesOrAll(a, pos)
	if err != nil {
		return err
	}
	if !cf.json {
		return streamStatuses(a, stdout, names, len(pos) == 0)
	}
	out, err := getEach[controlapi.DeviceStatus](a, names, "/status", nil)
	if err != nil {
		return err
	}
	return show(cf, stdout, len(pos) == 1, out, nil)
}
