package main

import (
	"fmt"
	"io"
	"net/http"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("ls", verb{
		usage: "ls [--target TYPE] [--tree]",
		help:  "list devices (only those with a target of TYPE; --tree: with their backing devices under them)",
		run:   runLs,
	})
}

func runLs(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("ls")
	var cf clientFlags
	cf.register(fs, true)
	typ := fs.String("target", "", "list only the devices with a target of `TYPE` in their live table")
	tree := fs.Bool("tree", false, "print each device's backing devices under it (dmsetup ls --tree)")
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
	if *tree {
		return printTree(a, stdout, all)
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

// printTree prints each device, then its live table's backing devices
// under it, as dmsetup ls --tree draws them.
func printTree(a *controlapi.Client, w io.Writer, all []controlapi.DeviceInfo) error {
	for _, d := range all {
		deps, err := getEach[controlapi.Deps](a, []string{d.Name}, "/deps", nil, true)
		if err != nil {
			return err
		}
		if len(deps) == 0 {
			continue // removed since the listing
		}
		fmt.Fprintln(w, d.Name)
		for k, dep := range deps[0].Devices {
			branch := " ├─"
			if k == len(deps[0].Devices)-1 {
				branch = " └─"
			}
			fmt.Fprintf(w, "%s(%s)\n", branch, depName(dep, "devno"))
		}
	}
	return nil
}
