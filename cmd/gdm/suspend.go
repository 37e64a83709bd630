package main

import "io"

func init() {
	register("suspend", verb{
		usage: "suspend NAME [--noflush] [--nolockfs] [--timeout D]",
		help:  "hold new I/O, wait for in-flight I/O, flush backing devices (all or nothing)",
		run:   runSuspend,
	})
}

func runSuspend(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("suspend")
	var cf clientFlags
	cf.register(fs, true)
	noflush := fs.Bool("noflush", false, "do not flush the backing devices")
	// dm freezes the file system on the device first unless --nolockfs;
	// gdm has none to freeze (it lives in the NBD client's kernel, which
	// gdm's suspend cannot reach), so the flag is taken for scripts
	// written for dmsetup and changes nothing.
	fs.Bool("nolockfs", false, "accepted as dmsetup's; gdm never freezes a file system (it lives in the NBD client's kernel)")
	timeout := fs.Duration("timeout", 0, "how long to wait for in-flight I/O and the flush (default 30s); past it nothing is suspended")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	q, err := waitQuery("noflush", *noflush, *timeout)
	if err != nil {
		return err
	}
	return postDevice(cf, stdout, pos[0], "suspend", q, nil)
}
