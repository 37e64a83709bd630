package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/gdm-project/gdm/pkg/targets"
)

func init() {
	register("man", verb{
		usage: "man",
		help:  "print the gdm(8) manual page (roff): man -l <(gdm man)",
		run:   runMan,
	})
}

func runMan(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("man")
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	_, err := io.WriteString(stdout, manPage())
	return err
}

// roff escapes text for a roff line: backslashes, and a leading dot or
// quote that would make it a request.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// manPage is gdm(8), made from the verbs, their flags and the target types:
// the same source as `gdm -h` and `gdm VERB -h`.
func manPage() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w(`.TH GDM 8 "" "gdm %s" "System Administration"`, roff(versionString()))
	w(".SH NAME")
	w(`gdm \- a userspace device\-mapper serving dm\-style tables over NBD`)
	w(".SH SYNOPSIS")
	w(`.B gdm`)
	w(`[\fIflags\fR] \fIverb\fR [\fIflags\fR] [\fIargs\fR]`)
	w(".SH DESCRIPTION")
	w(`\fBgdm serve\fR runs the daemon: it serves virtual block devices over NBD, each a table of targets that maps 512\-byte sectors onto backing files and block devices, in the syntax of the kernel's device\-mapper.`)
	w(`Attach a device with \fBnbd\-client\fR(8) or any NBD client; drive the daemon with the other verbs, as \fBdmsetup\fR(8) drives dm.`)
	w(`Flags may come before or after the verb; \fBgdm \fIverb\fB \-h\fR lists a verb's flags.`)
	w(".SH VERBS")
	for _, n := range verbNames() {
		v := verbs[n]
		w(".TP")
		w(`.B %s`, roff(v.usage))
		w("%s", roff(v.help))
		manFlags(w, verbFlags(n))
	}
	w(".SH TABLES")
	w(`A table is one line per target: \fI<start> <length> <target> <args>\fR, start and length in 512\-byte sectors, each target starting where the one before ended.`)
	w(`Numbers may carry dm's leading +. Targets:`)
	for _, n := range targets.TypeNames() {
		t, _ := targets.Lookup(n)
		if t.Summary == "" {
			continue
		}
		w(".TP")
		w(`.B %s`, roff(strings.TrimSpace(n+" "+t.Syntax)))
		w("%s", roff(t.Summary))
	}
	w(".SH ENVIRONMENT")
	w(".TP")
	w(".B GDM_CONTROL")
	w(`The daemon's control socket, for every verb but serve (default /run/gdm/gdm.sock; \-\-control overrides it).`)
	w(".SH FILES")
	w(".TP")
	w(".I /var/lib/gdm")
	w(`Device definitions (\-\-state\-dir), mode 0700: tables may hold keys.`)
	w(".TP")
	w(".I /run/gdm/gdm.sock, /run/gdm/nbd.sock")
	w(`The control API socket (mode 0600) and the NBD socket (mode 0660).`)
	w(".SH EXIT STATUS")
	w(`0 on success, 1 when the daemon refused or failed the verb, 2 for a command line that could not be understood.`)
	w(".SH SEE ALSO")
	w(`\fBdmsetup\fR(8), \fBnbd\-client\fR(8), \fBnbdkit\fR(1), \fBqemu\-nbd\fR(8)`)
	return b.String()
}

// manFlags lists a verb's flags as an indented list under it.
func manFlags(w func(string, ...any), flags []*flag.Flag) {
	if len(flags) == 0 {
		return
	}
	w(".RS")
	for _, f := range flags {
		_, usage := flag.UnquoteUsage(f)
		w(".TP")
		if arg := flagArg(f); arg != "" {
			w(`.BI \-\-%s " %s"`, roff(f.Name), roff(arg))
		} else {
			w(`.B \-\-%s`, roff(f.Name))
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			usage += " (default " + f.DefValue + ")"
		}
		w("%s", roff(usage))
	}
	w(".RE")
}
