package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("table", verb{
		usage: "table [NAME] [--inactive]",
		help:  "print the live (or inactive) table of one or every device",
		run:   runTable,
	})
}

func runTable(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("table")
	var cf clientFlags
	cf.register(fs, true)
	inactive := fs.Bool("inactive", false, "the inactive table")
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
	out, err := getEach[controlapi.TableText](a, names, "/table", q)
	if err != nil {
		return err
	}
	return show(cf, stdout, len(pos) == 1, out, func(w io.Writer, t controlapi.TableText, _ int) {
		for _, line := range strings.Split(strings.TrimSuffix(t.Table, "\n"), "\n") {
			if line == "" {
				continue
			}
			if len(pos) == 0 {
				fmt.Fprintf(w, "%s: ", t.Name)
			}
			fmt.Fprintln(w, dmsetupLine(strings.SplitN(line, " ", 4)...))
		}
	})
}

// dmsetupLine prints a target the way dmsetup does ("%llu %llu %s %s"):
// start, length, type and parameters, with the blank before the parameters
// even when a target has none ("0 8 zero "), so that gdm's table and status
// output is dmsetup's to the byte.
func dmsetupLine(fields ...string) string {
	for len(fields) < 4 {
		fields = append(fields, "")
	}
	return strings.Join(fields, " ")
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
