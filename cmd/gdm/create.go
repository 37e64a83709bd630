package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("create", verb{
		usage: "create NAME [--table-file F|--table L...|--notable] [--read-only] [--uuid U]",
		help:  "make a device; its table goes live at once (with --notable: no table; load and resume one later)",
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
	noTable := fs.Bool("notable", false, "make the device without a table (dmsetup create --notable); stdin is not read")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *noTable {
		if tf.file != "" || len(tf.lines) > 0 {
			return fmt.Errorf("%w: --notable and a table together", errUsage)
		}
		req := controlapi.CreateReq{Name: pos[0], UUID: *uuid, ReadOnly: *readOnly, NoTable: true}
		var info controlapi.DeviceInfo
		if err := controlapi.New(cf.control).Call(http.MethodPost, "/v1/devices", nil, req, &info); err != nil {
			return onDevice(pos[0], err)
		}
		if cf.json {
			return printJSON(stdout, info)
		}
		return nil
	}
	// A table without target lines (stdin empty, or only comments) makes
	// the device without one, as dmsetup create does; the daemon sees to
	// the comments.
	text, err := tf.read(stdin)
	if err != nil && !errors.Is(err, errEmptyStdin) {
		return onDevice(pos[0], err)
	}
	q := url.Values{"name": {pos[0]}}
	if *uuid != "" {
		q.Set("uuid", *uuid)
	}
	if *readOnly {
		q.Set("read_only", "1")
	}
	return postTable(cf, stdout, pos[0], "/v1/devices", q, text)
}
