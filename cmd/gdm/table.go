package main

import (
	"io"
	"net/http"
	"net/url"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("table", verb{
		usage: "table [NAME] [--inactive] [--showkeys] [--target TYPE]",
		help:  "print the live (or inactive) table of one or every device",
		run:   runTable,
	})
}

func runTable(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("table")
	var cf clientFlags
	cf.register(fs, true)
	inactive := fs.Bool("inactive", false, "the inactive table")
	showKeys := fs.Bool("showkeys", false, "print crypt keys (by default zeros of the key's length, as dmsetup prints them)")
	typ := fs.String("target", "", "print only the lines of targets of `TYPE`")
	pos, err := parseArgs(fs, args, 0, 1)
	if err != nil {
		return err
	}
	a := controlapi.New(cf.control)
	names, err := namesOrAll(a, pos)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *inactive {
		q.Set("inactive", "1")
	}
	if *showKeys {
		q.Set("showkeys", "1")
	}
	if !cf.json {
		return streamTables(a, stdout, names, q, len(pos) == 0, *typ)
	}
	out, err := getEach[controlapi.TableText](a, names, "/table", q, len(pos) == 0)
	if err != nil {
		return err
	}
	if *typ != "" {
		out = filterTables(out, *typ, len(pos) == 0)
	}
	return show(cf, stdout, len(pos) == 1, out, nil)
}

// namesOrAll is the named device, or every device when none is named.
func namesOrAll(a *controlapi.Client, pos []string) ([]string, error) {
	if len(pos) == 1 {
		return pos, nil
	}
	var all []controlapi.DeviceInfo
	if err := a.Call(http.MethodGet, "/v1/devices", nil, nil, &all); err != nil {
		return nil, err
	}
	names := make([]string, len(all))
	for i, d := range all {
		names[i] = d.Name
	}
	return names, nil
}
