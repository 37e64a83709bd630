package main

import (
	"fmt"
	"io"
	"strconv"
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
	a := newAPI(cf.control)
	names, err := namesOrAll(a, pos)
	if err != nil {
		return err
	}
	out, err := getEach[deviceStatus](a, names, "/status", nil)
	if err != nil {
		return err
	}
	if cf.json {
		if len(pos) == 1 {
			return printJSON(stdout, out[0])
		}
		return printJSON(stdout, out)
	}
	for _, s := range out {
		for _, t := range s.Targets {
			if len(pos) == 0 {
				fmt.Fprintf(stdout, "%s: ", s.Name)
			}
			fmt.Fprintln(stdout, dmsetupLine(strconv.FormatUint(t.Start, 10), strconv.FormatUint(t.Length, 10), t.Type, t.Status))
		}
	}
	return nil
}
