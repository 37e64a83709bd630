package main

import (
	"fmt"
	"io"
	"strconv"

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
	out, err := getEach[controlapi.DeviceStatus](a, names, "/status", nil)
	if err != nil {
		return err
	}
	return show(cf, stdout, len(pos) == 1, out, func(w io.Writer, s controlapi.DeviceStatus, _ int) {
		for _, t := range s.Targets {
			if len(pos) == 0 {
				fmt.Fprintf(w, "%s: ", s.Name)
			}
			fmt.Fprintln(w, dmsetupLine(strconv.FormatUint(t.Start, 10), strconv.FormatUint(t.Length, 10), t.Type, t.Status))
		}
	})
}
