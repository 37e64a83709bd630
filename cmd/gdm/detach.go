package main

import (
	"io"
	"net/http"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("detach", verb{
		usage: "detach NAME|/dev/nbdN",
		help:  "disconnect the kernel's NBD device from a device (NBD_CMD_DISCONNECT) and remove /dev/gdm/NAME",
		run:   runDetach,
	})
}

func runDetach(args []string, _ io.Reader, _ io.Writer) error {
	fs := newFlagSet("detach")
	var cf clientFlags
	cf.register(fs, false)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	return onDevice(pos[0], controlapi.New(cf.control).Call(http.MethodPost, "/v1/detach", nil, controlapi.DetachReq{Target: pos[0]}, nil))
}
