package main

import (
	"io"
	"net/http"
	"net/url"
)

func init() {
	register("suspend", verb{
		usage: "suspend NAME [--noflush] [--timeout D]",
		help:  "hold new I/O, wait for in-flight I/O, flush backing devices",
		run:   runSuspend,
	})
}

func runSuspend(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("suspend")
	var cf clientFlags
	cf.register(fs, true)
	noflush := fs.Bool("noflush", false, "do not flush the backing devices")
	timeout := fs.Duration("timeout", 0, "how long to wait for in-flight I/O (default 30s)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := needArgs(pos, 1, 1); err != nil {
		return err
	}
	q := url.Values{}
	if *noflush {
		q.Set("noflush", "1")
	}
	if *timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	var info deviceInfo
	if err := newAPI(cf.control).call(http.MethodPost, "/v1/devices/"+pos[0]+"/suspend", q, nil, &info); err != nil {
		return onDevice(pos[0], err)
	}
	if cf.json {
		return printJSON(stdout, info)
	}
	return nil
}
