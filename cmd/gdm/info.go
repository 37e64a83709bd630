package main

import (
	"fmt"
	"io"
	"net/http"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("info", verb{
		usage: "info [NAME]",
		help:  "state, read-only, connections, tables, event number, holders, uuid",
		run:   runInfo,
	})
}

func runInfo(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("info")
	var cf clientFlags
	cf.register(fs, true)
	pos, err := parseArgs(fs, args, 0, 1)
	if err != nil {
		return err
	}
	a := controlapi.New(cf.control)
	var infos []controlapi.DeviceInfo
	if len(pos) == 1 {
		var i controlapi.DeviceInfo
		if err := a.Call(http.MethodGet, "/v1/devices/"+pos[0], nil, nil, &i); err != nil {
			return onDevice(pos[0], err)
		}
		if cf.json {
			return printJSON(stdout, i)
		}
		infos = append(infos, i)
	} else if err := a.Call(http.MethodGet, "/v1/devices", nil, nil, &infos); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, infos)
	}
	for k, i := range infos {
		if k > 0 {
			fmt.Fprintln(stdout)
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
		fmt.Fprintf(stdout, "Name:              %s\n", i.Name)
		fmt.Fprintf(stdout, "State:             %s (%s)\n", i.State, rw)
		fmt.Fprintf(stdout, "Tables present:    %s\n", tables)
		fmt.Fprintf(stdout, "Open count:        %d\n", i.OpenConnections)
		fmt.Fprintf(stdout, "Event number:      %d\n", i.EventNumber)
		fmt.Fprintf(stdout, "Table generation:  %d\n", i.Generation)
		fmt.Fprintf(stdout, "Table holders:     %d\n", i.Holders)
		fmt.Fprintf(stdout, "Size:              %d sectors (%d bytes)\n", i.Sectors, i.SizeBytes)
		fmt.Fprintf(stdout, "UUID:              %s\n", i.UUID)
		if i.Broken != "" {
			fmt.Fprintf(stdout, "Broken:            %s\n", i.Broken)
		}
	}
	return nil
}
