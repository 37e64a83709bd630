package main

import (
	"fmt"
	"io"
	"net/http"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("targets", verb{
		usage: "targets",
		help:  "list the target types the daemon maps, with the version of the kernel's dm target each follows (dmsetup targets)",
		run:   runTargets,
	})
}

func runTargets(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("targets")
	var cf clientFlags
	cf.register(fs, true)
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	var types []controlapi.TargetType
	if err := controlapi.New(cf.control).Call(http.MethodGet, "/v1/targets", nil, nil, &types); err != nil {
		return err
	}
	return show(cf, stdout, false, types, func(w io.Writer, t controlapi.TargetType, _ int) {
		fmt.Fprintf(w, "%-16s v%s\n", t.Name, t.Version)
	})
}
