package main

import (
	"bufio"
	"bytes"
	"io"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("status", verb{
		usage: "status [NAME] [--target TYPE]",
		help:  "print each target's status (striped: legs and A/D per leg)",
		run:   runStatus,
	})
}

func runStatus(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("status")
	var cf clientFlags
	cf.register(fs, true)
	typ := fs.String("target", "", "print only the status of targets of `TYPE`")
	pos, err := parseArgs(fs, args, 0, 1)
	if err != nil {
		return err
	}
	a := controlapi.New(cf.control)
	names, err := namesOrAll(a, pos)
	if err != nil {
		return err
	}
	switch {
	case !cf.json:
		return streamStatuses(a, stdout, names, len(pos) == 0, *typ)
	case *typ != "":
		return statusJSONOf(a, cf, stdout, names, len(pos) == 1, *typ)
	}
	return streamStatusJSON(a, stdout, names, len(pos) == 1)
}

// statusJSONOf is --json with --target: each device's status decoded,
// kept to the targets of type typ (devices with none left out of a
// listing of every device), and encoded again.
func statusJSONOf(a *controlapi.Client, cf clientFlags, out io.Writer, names []string, named bool, typ string) error {
	all := []controlapi.DeviceStatus{}
	for _, n := range names {
		st := controlapi.DeviceStatus{Name: n, Targets: []controlapi.StatusLine{}}
		err := streamOne(a, controlapi.DevicePath(n, "/status"), nil, func(body io.Reader) error {
			return eachStatusLine(body, func(t controlapi.StatusLine) {
				if t.Type == typ {
					st.Targets = append(st.Targets, t)
				}
			})
		})
		if err != nil && !(!named && removedSinceListed(err)) {
			return onDevice(n, err)
		}
		if err == nil && (named || len(st.Targets) > 0) {
			all = append(all, st)
		}
	}
	return show(cf, out, named, all, nil)
}

// streamStatusJSON copies the daemon's status JSON through as it comes:
// one device's object, or a list of every device's. Decoding a million
// targets' lines to encode them again took seconds; the daemon already
// writes indented JSON, a target a line.
func streamStatusJSON(a *controlapi.Client, out io.Writer, names []string, named bool) error {
	w := bufio.NewWriterSize(out, 64<<10)
	defer w.Flush()
	if !named {
		w.WriteString("[\n")
	}
	sep := ""
	for _, n := range names {
		err := streamOne(a, controlapi.DevicePath(n, "/status"), nil, func(body io.Reader) error {
			if named {
				_, err := io.Copy(w, body)
				return err
			}
			b, err := io.ReadAll(body) // one device of a list: small next to a million-target one
			w.WriteString(sep)
			w.Write(bytes.TrimRight(b, "\n"))
			sep = ",\n"
			return err
		})
		if err != nil && !(!named && removedSinceListed(err)) {
			return onDevice(n, err)
		}
	}
	if !named {
		w.WriteString("\n]\n")
	}
	return nil
}
