package main

import (
	"io"
	"net/http"
	"net/url"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("remove", verb{
		usage: "remove NAME [--force]",
		help:  "destroy a device; refused while NBD clients are connected unless --force",
		run:   runRemove,
	})
}

func runRemove(args []string, _ io.Reader, _ io.Writer) error {
	fs := newFlagSet("remove")
	var cf clientFlags
	cf.register(fs, false)
	force := fs.Bool("force", false, "disconnect open NBD connections (their requests fail)")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *force {
		q.Set("force", "1")
	}
	return onDevice(pos[0], controlapi.New(cf.control).Call(http.MethodDelete, controlapi.DevicePath(pos[0], ""), q, nil, nil))
}
