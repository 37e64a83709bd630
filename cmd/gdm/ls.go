package main

import (
	"fmt"
	"io"
	"net/http"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("ls", verb{
		usage: "ls [--target TYPE]",
		help:  "list devices (only those with a target of TYPE)",
		run:   runLs,
	})
}

func runLs(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("ls")
	var cf clientFlags
	cf.register(fs, true)
	typ := fs.String("target", "", "list only the devices with a target of `TYPE` in their live table")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	a := controlapi.New(cf.control)
	var all []controlapi.DeviceInfo
	if err := a.Call(http.MethodGet, "/v1/devices", nil, nil, &all); err != nil {
		return err
	}
	if *typ != "" {
		var err error
		if all, err = withTarget(a, all, *typ); err != nil {
			return err
		}
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

// withTarget keeps the devices whose live table has a target of type typ
// (a device removed since the listing is left out).
func withTarget(a *controlapi.Client, all []controlapi.DeviceInfo, typ string) ([]controlapi.DeviceInfo, error) {
	out := all[:0]
	for _, d := range all {
		ok, err := hasTarget(a, d.Name, typ)
		if err != nil && !removedSinceListed(err) {
			return nil, onDevice(d.Name, err)
		}
		if ok {
			out = append(out, d)
		}
	}
	return out, nil
}
