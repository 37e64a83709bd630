package main

import (
	"io"

	"github.com/gdm-project/gdm/internal/controlapi"
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
	pos, err := parseArgs(fs, args, 2, 2)
	if err != nil {
		return err
	}
	return postDevice(cf, stdout, pos[0], "rename", nil, controlapi.RenameReq{NewName: pos[1]})
}
