package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("version", verb{
		usage: "version",
		help:  "print the versions of this gdm and of the daemon",
		run:   runVersion,
	})
}

func runVersion(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("version")
	var cf clientFlags
	cf.register(fs, true)
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	local := controlapi.Version(versionString())
	var daemon controlapi.VersionInfo
	derr := controlapi.New(cf.control).Call(http.MethodGet, "/v1/version", nil, nil, &daemon)
	if cf.json {
		out := map[string]any{"client": local}
		if derr == nil {
			out["daemon"] = daemon
		}
		return printJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "Client version:    %s (%s)\n", local.Version, local.GoVersion)
	if derr != nil {
		fmt.Fprintf(stdout, "Daemon version:    unavailable (%v)\n", derr)
		return nil
	}
	fmt.Fprintf(stdout, "Daemon version:    %s (%s)\n", daemon.Version, daemon.GoVersion)
	fmt.Fprintf(stdout, "Target types:      %s\n", strings.Join(daemon.TargetTypes, " "))
	return nil
}
