package main

import (
	"fmt"
	"io"
	"net/http"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("ls", verb{
		usage: "ls",
		help:  "list devices",
		run:   runLs,
	})
}

func runLs(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("ls")
	var cf clientFlags
	cf.register(fs, true)
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	var all []controlapi.DeviceInfo
	if err := controlapi.New(cf.control).Call(http.MethodGet, "/v1/devices", nil, nil, &all); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, all)
	}
	if len(all) == 0 {
		fmt.Fprintln(stdout, "No devices found")
	}
	for _, d := range all {
		fmt.Fprintf(stdout, "%s\t(%d sectors, %s)", d.Name, d.Sectors, d.State)
		if d.Attached != nil {
			fmt.Fprintf(stdout, "\t%s", d.Attached.Device)
		}
		fmt.Fprintln(stdout)
		if d.Broken != "" {
			fmt.Fprintf(stdout, "\t%s\n", d.Broken)
		}
	}
	return nil
}
