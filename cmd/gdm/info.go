package main

import (
	"fmt"
	"io"
	"net/http"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("info", verb{
		usage: "info [NAME] [-c [-o FIELDS] [--noheadings] [--separator S]]",
		help:  "state, read-only, connections, tables, event number, holders, uuid",
		run:   runInfo,
	})
}

func runInfo(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("info")
	var cf clientFlags
	cf.register(fs, true)
	columns := fs.Bool("c", false, "one line a device, in columns (dmsetup info -c)")
	fieldList := fs.String("o", defaultInfoFields, "with -c: the `FIELDS`, comma-separated")
	noHeadings := fs.Bool("noheadings", false, "with -c: no heading line")
	sep := fs.String("separator", "", "with -c: join the fields with `S` instead of aligning them")
	pos, err := parseArgs(fs, args, 0, 1)
	if err != nil {
		return err
	}
	fields, err := pickFields(*fieldList)
	if err != nil {
		return err
	}
	a := controlapi.New(cf.control)
	var infos []controlapi.DeviceInfo
	if len(pos) == 1 {
		infos, err = getEach[controlapi.DeviceInfo](a, pos, "", nil, false)
	} else {
		err = a.Call(http.MethodGet, "/v1/devices", nil, nil, &infos)
	}
	if err != nil {
		return err
	}
	if *columns && !cf.json {
		return printColumns(stdout, infos, fields, *noHeadings, *sep)
	}
	return show(cf, stdout, len(pos) == 1, infos, printInfo)
}

// printInfo writes one device's info as dmsetup info does, after a blank
// line if it is not the first.
func printInfo(w io.Writer, i controlapi.DeviceInfo, k int) {
	if k > 0 {
		fmt.Fprintln(w)
	}
	tables := "None"
	switch {
	case i.LiveTable && i.InactiveTable:
		tables = "LIVE & INACTIVE"
	case i.LiveTable:
		tables = "LIVE"
	case i.InactiveTable:
		tables = "INACTIVE"
	}
	rw := "read-write"
	if i.ReadOnly {
		rw = "read-only"
	}
	fmt.Fprintf(w, "Name:              %s\n", i.Name)
	fmt.Fprintf(w, "State:             %s (%s)\n", i.State, rw)
	fmt.Fprintf(w, "Tables present:    %s\n", tables)
	fmt.Fprintf(w, "Open count:        %d\n", i.OpenConnections)
	fmt.Fprintf(w, "Event number:      %d\n", i.EventNumber)
	fmt.Fprintf(w, "Table generation:  %d\n", i.Generation)
	fmt.Fprintf(w, "Table holders:     %d\n", i.Holders)
	fmt.Fprintf(w, "Size:              %d sectors (%d bytes)\n", i.Sectors, i.SizeBytes)
	fmt.Fprintf(w, "UUID:              %s\n", i.UUID)
	if i.Broken != "" {
		fmt.Fprintf(w, "Broken:            %s\n", i.Broken)
	}
	if i.InactiveLost != "" {
		fmt.Fprintf(w, "Inactive lost:     %s\n", i.InactiveLost)
	}
	if a := i.Attached; a != nil {
		fmt.Fprintf(w, "Attached:          %s (%d connections, timeout %ds, dead timeout %ds)\n", a.Device, a.Connections, a.TimeoutSeconds, a.DeadTimeoutSeconds)
		if a.Link != "" {
			fmt.Fprintf(w, "Link:              %s\n", a.Link)
		}
	}
}
