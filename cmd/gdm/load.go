package main

import (
	"io"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("load", verb{
		usage: "load|reload NAME [--table-file F|--table L...]",
		help:  "put a table in the device's inactive slot (resume makes it live)",
		run:   runLoad,
	})
}

func runLoad(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newFlagSet("load")
	var cf clientFlags
	var tf tableFlags
	cf.register(fs, true)
	tf.register(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	text, err := tf.read(stdin)
	if err != nil {
		return onDevice(pos[0], err)
	}
	return postTable(cf, stdout, pos[0], controlapi.DevicePath(pos[0], "/load"), nil, text)
}
