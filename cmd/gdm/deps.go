package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("deps", verb{
		usage: "deps [NAME] [-o devno|blkdevname]",
		help:  "list the backing devices of the live table: block devices by number (or kernel name), files by path, exports by URI (dmsetup deps)",
		run:   runDeps,
	})
}

func runDeps(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("deps")
	var cf clientFlags
	cf.register(fs, true)
	format := fs.String("o", "devno", "how to name a block device: `devno` (major, minor) or blkdevname (its kernel name, as in /sys/block)")
	pos, err := parseArgs(fs, args, 0, 1)
	if err != nil {
		return err
	}
	if *format != "devno" && *format != "blkdevname" {
		return fmt.Errorf("%w: -o takes devno or blkdevname, not %q", errUsage, *format)
	}
	a := controlapi.New(cf.control)
	names, err := namesOrAll(a, pos)
	if err != nil {
		return err
	}
	deps, err := getEach[controlapi.Deps](a, names, "/deps", nil, len(pos) == 0)
	if err != nil {
		return err
	}
	return show(cf, stdout, len(pos) == 1, deps, func(w io.Writer, d controlapi.Deps, _ int) {
		if len(pos) == 0 {
			fmt.Fprintf(w, "%s: ", d.Name)
		}
		fmt.Fprintf(w, "%d dependencies\t:", len(d.Devices))
		for _, dep := range d.Devices {
			fmt.Fprintf(w, " (%s)", depName(dep, *format))
		}
		fmt.Fprintln(w)
	})
}

// depName is how deps prints one backing device: as dmsetup does for a
// block device, by path or URI for the rest.
func depName(d controlapi.Dep, format string) string {
	if d.Kind != "block" {
		return d.Path
	}
	if format == "blkdevname" {
		link, err := os.Readlink(fmt.Sprintf("/sys/dev/block/%d:%d", d.Major, d.Minor))
		if err == nil && !strings.HasSuffix(link, "/") {
			return filepath.Base(link)
		}
	}
	return fmt.Sprintf("%d, %d", d.Major, d.Minor)
}
