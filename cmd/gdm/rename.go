package main

import (
	"io"
	"net/http"
)

func init() {
	register("rename", verb{
		usage: "rename OLD NEW",
		help:  "rename a device (connected clients keep working)",
		run:   runRename,
	})
}

func runRename(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("rename")
	var cf clientFlags
	cf.register(fs, true)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 2, 2); err != nil {
		return err
	}
	var info deviceInfo
	req := struct {
		NewName string `json:"new_name"`
	}{pos[1]}
	if err := newAPI(cf.control).call(http.MethodPost, "/v1/devices/"+pos[0]+"/rename", nil, req, &info); err != nil {
		return onDevice(pos[0], err)
	}
	if cf.json {
		return printJSON(stdout, info)
	}
	return nil
}
