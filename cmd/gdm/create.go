package main

import (
	"io"
	"net/http"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("create", verb{
		usage: "create NAME [--table-file F|--table L...] [--read-only] [--uuid U]",
		help:  "make a device; its table goes live at once",
		run:   runCreate,
	})
}

func runCreate(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newFlagSet("create")
	var cf clientFlags
	var tf tableFlags
	cf.register(fs, true)
	tf.register(fs)
	readOnly := fs.Bool("read-only", false, "refuse writes; open backing devices read-only")
	uuid := fs.String("uuid", "", "the device's uuid (default: a random one)")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	text, err := tf.read(stdin)
	if err != nil {
		return onDevice(pos[0], err)
	}
	var info controlapi.DeviceInfo
	err = controlapi.New(cf.control).Call(http.MethodPost, "/v1/devices", nil,
		controlapi.CreateReq{Name: pos[0], Table: text, UUID: *uuid, ReadOnly: *readOnly}, &info)
	if err != nil {
		return onDevice(pos[0], err)
	}
	if cf.json {
		return printJSON(stdout, info)
	}
	return nil
}
