// Command gdm is a userspace device-mapper: `gdm serve` runs the daemon that
// serves dm-style devices over NBD; the other verbs (create, load, resume,
// suspend, remove, table, status, info, ...) drive it as dmsetup drives dm.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gdm-project/gdm/pkg/targets"
)

// verb is one subcommand. run gets the arguments after the verb and returns
// an error to print as `gdm: VERB NAME: reason`.
type verb struct {
	usage string
	help  string
	run   func(args []string, stdin io.Reader, stdout io.Writer) error
}

var verbs = map[string]verb{}

func register(name string, v verb) { verbs[name] = v }

// cliError carries the device name for the error line.
type cliError struct {
	device string
	err    error
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

func onDevice(name string, err error) error {
	if err == nil {
		return nil
	}
	return &cliError{device: name, err: err}
}

// errUsage marks a command line that could not be understood.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	word, rest, ok := splitVerb(args)
	name := word
	if name == "reload" {
		name = "load"
	}
	v := verbs[name]
	if !ok && word == "" {
		fmt.Fprintln(stderr, "gdm: no verb given (see gdm help)")
		return 2
	}
	if !ok {
		fmt.Fprintf(stderr, "gdm: unknown verb %q (see gdm help)\n", word)
		return 2
	}
	err := v.run(rest, stdin, stdout)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ce *cliError
	prefix := "gdm: " + word
	if errors.As(err, &ce) && ce.device != "" {
		prefix += " " + ce.device
	}
	fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
	if errors.Is(err, errUsage) {
		fmt.Fprintf(stderr, "usage: gdm %s\n", v.usage)
		return 2
	}
	return 1
}

// splitVerb finds the verb in args and returns it with the other
// arguments, in order. Flags may come before the verb, as `dmsetup -v
// create` and `git -C DIR` allow: the verb is the first word naming one that
// follows only flags and the values of flags given as two words (a value
// that is itself a verb's name must then be written --flag=VALUE). The
// verb's own parser then takes the flags wherever they stand. Without a
// verb, word is the stray word found instead ("" if none).
func splitVerb(args []string) (word string, rest []string, ok bool) {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		if _, known := verbs[a]; known || a == "reload" {
			return a, append(args[:i:i], args[i+1:]...), true
		}
		if prev := args[max(i-1, 0)]; i == 0 || !strings.HasPrefix(prev, "-") || strings.Contains(prev, "=") {
			return a, nil, false // not the value of the flag before it
		}
	}
	return "", nil, false
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "gdm: a userspace device-mapper serving dm-style tables over NBD")
	fmt.Fprintln(w, "\nusage: gdm [flags] VERB [flags] [args]")
	for _, n := range verbNames() {
		fmt.Fprintf(w, "  %-44s %s\n", verbs[n].usage, verbs[n].help)
	}
	fmt.Fprintln(w, "\nTable lines are <start> <length> <target> <args>, in 512-byte sectors; targets:")
	for _, n := range targets.TypeNames() {
		if t, _ := targets.Lookup(n); t.Summary != "" { // tests' stub types have none
			fmt.Fprintf(w, "  %-44s %s\n", strings.TrimSpace(n+" "+t.Syntax), t.Summary)
		}
	}
	fmt.Fprintln(w, "\nVerbs other than serve talk to the daemon's control socket: --control or $GDM_CONTROL")
	fmt.Fprintln(w, "(default /run/gdm/gdm.sock). `gdm VERB -h` lists a verb's flags.")
}

// parseArgs parses a verb's flags and checks it got min to max positional
// arguments, which it returns.
func parseArgs(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) < min || len(pos) > max {
		return nil, fmt.Errorf("%w: wrong number of arguments", errUsage)
	}
	if err := noNegativeDurations(fs); err != nil {
		return nil, err
	}
	if slices.Contains(pos, "") {
		// A device name, path or message word: none may be empty (the
		// daemon answered `remove ""` with a bare 404).
		return nil, fmt.Errorf("%w: an empty argument", errUsage)
	}
	return pos, nil
}

// noNegativeDurations refuses a duration flag given below zero: no verb
// has a use for one, and some took it as "no limit" (serve's
// --control-timeout) or as the default.
func noNegativeDurations(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok && err == nil {
			if d, ok := g.Get().(time.Duration); ok && d < 0 {
				err = fmt.Errorf("%w: --%s must not be negative, not %v", errUsage, f.Name, d)
			}
		}
	})
	return err
}

// parseInterspersed parses flags wherever they appear among the positional
// arguments, as dmsetup allows (`gdm create NAME --table ...`). A flag it
// cannot parse is a usage error (exit 2), as gdm(8) documents.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		rest := fs.Args()
		if consumed := args[:len(args)-len(rest)]; endsWithDashDash(fs, consumed) {
			return append(pos, rest...), nil // flag.Parse took the "--"
		}
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// endsWithDashDash says whether the words flag.Parse consumed end in a
// "--" that ended the flags (and not in the value of a flag before it).
func endsWithDashDash(fs *flag.FlagSet, consumed []string) bool {
	n := len(consumed)
	if n == 0 || consumed[n-1] != "--" {
		return false
	}
	if n == 1 {
		return true
	}
	prev := consumed[n-2]
	if !strings.HasPrefix(prev, "-") || strings.Contains(prev, "=") {
		return true
	}
	f := fs.Lookup(strings.TrimLeft(prev, "-"))
	if f == nil {
		return true
	}
	b, isBool := f.Value.(interface{ IsBoolFlag() bool })
	return isBool && b.IsBoolFlag()
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("gdm "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	if captureFlags != nil {
		captureFlags(fs)
	}
	return fs
}

// version is set by -ldflags "-X main.version=..." or read from build info.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "0.1.0-dev"
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, "\n") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// exitOnNextSignal makes a second SIGINT or SIGTERM, during a graceful
// shutdown, end the process at once.
func exitOnNextSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ch
		fmt.Fprintln(os.Stderr, "gdm: second signal: exiting now")
		os.Exit(1)
	}()
}
