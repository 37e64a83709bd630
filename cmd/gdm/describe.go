package main

import (
	"flag"
	"io"
	"sort"
	"strings"
	"sync"
)

// captureFlags, when set, sees every flag set a verb makes (newFlagSet).
// describeVerb sets it: each verb registers its flags in its own run
// function, and running it with -h is how the man page and the shell
// completions learn them from the same source as `gdm VERB -h`, so that
// they cannot drift from it.
var (
	captureFlags func(*flag.FlagSet)
	describeMu   sync.Mutex // describeVerb is not reentrant
)

// verbFlags returns the flags verb name takes, sorted by name, by running
// it with -h and its output discarded (every verb parses its flags before
// doing anything).
func verbFlags(name string) []*flag.Flag {
	describeMu.Lock()
	defer describeMu.Unlock()
	var sets []*flag.FlagSet
	captureFlags = func(fs *flag.FlagSet) {
		fs.SetOutput(io.Discard)
		sets = append(sets, fs)
	}
	defer func() { captureFlags = nil }()
	verbs[name].run([]string{"-h"}, strings.NewReader(""), io.Discard)
	var out []*flag.Flag
	for _, fs := range sets {
		fs.VisitAll(func(f *flag.Flag) { out = append(out, f) })
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// verbNames returns the verbs, sorted.
func verbNames() []string {
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// flagArg is a flag's value placeholder as `gdm VERB -h` shows it (the
// back-quoted word of its usage, or the type's name), "" for a bool.
func flagArg(f *flag.Flag) string {
	name, _ := flag.UnquoteUsage(f)
	return name
}
