package main

import (
	"bufio"
	"bytes"
	"io"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("status", verb{
		usage: "status [NAME]",
		help:  "print each target's status (striped: legs and A/D per leg)",
		run:   runStatus,
	})
}

func runStatus(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("status")
	var cf clientFlags
	cf.register(fs, true)
	pos, err := parseArgs(fs, args, 0, 1)
	if err != nil {
		return err
	}
	a := controlapi.New(cf.control)
	names, err := namesOrAll(a, pos)
	if err != nil {
		return err
	}
	if !cf.json {
		return streamStatuses(a, stdout, names, len(pos) == 0)
	}
	return streamStatusJSON(a, stdout, names, len(pos) == 1)
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
