package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
)

func init() {
	register("completion", verb{
		usage: "completion bash|zsh",
		help:  "print a shell completion script: source <(gdm completion bash)",
		run:   runCompletion,
	})
}

// The scripts hand the words of the command line to `gdm completion
// --words CWORD WORD...`, which answers one candidate a line: the logic
// lives here, in Go, and is tested once for both shells. An empty answer
// lets the shell complete file names (for --table-file and the like).
const (
	bashCompletion = `# gdm bash completion: source <(gdm completion bash)
_gdm() {
	local IFS=$'\n'
	COMPREPLY=($(gdm completion --words "$COMP_CWORD" "${COMP_WORDS[@]}" 2>/dev/null))
}
complete -o default -F _gdm gdm
`
	zshCompletion = `#compdef gdm
# gdm zsh completion: source <(gdm completion zsh), or save as _gdm in $fpath
_gdm() {
	local -a words_
	words_=("${(@f)$(gdm completion --words $((CURRENT - 1)) "${words[@]}" 2>/dev/null)}")
	if (( ${#words_} )) && [[ -n ${words_[1]} ]]; then
		compadd -Q -- "${words_[@]}"
	else
		_files
	fi
}
compdef _gdm gdm
`
)

// deviceVerbs take an existing device's name as their first argument.
var deviceVerbs = map[string]bool{"attach": true, "detach": true, "clear": true, "info": true, "load": true, "reload": true, "message": true,
	"remove": true, "rename": true, "resume": true, "status": true, "suspend": true, "table": true}

func runCompletion(args []string, _ io.Reader, stdout io.Writer) error {
	fs := newFlagSet("completion")
	words := fs.Bool("words", false, "answer candidates for the command line that follows (CWORD WORD...), as the scripts do")
	if len(args) > 0 && (args[0] == "--words" || args[0] == "-words") {
		// The words that follow are gdm's, flags included: not ours to parse.
		*words = true
		args = args[1:]
	} else if _, err := parseArgs(fs, args, 1, 1); err != nil {
		return err
	}
	if *words {
		if len(args) < 1 {
			return fmt.Errorf("%w: --words CWORD WORD...", errUsage)
		}
		cword, err := strconv.Atoi(args[0])
		if err != nil || cword < 1 || cword > len(args)-1 {
			return nil // a shell's odd call: no candidates
		}
		for _, c := range complete(args[1:], cword) {
			fmt.Fprintln(stdout, c)
		}
		return nil
	}
	switch args[0] {
	case "bash":
		_, err := io.WriteString(stdout, bashCompletion)
		return err
	case "zsh":
		_, err := io.WriteString(stdout, zshCompletion)
		return err
	}
	return fmt.Errorf("%w: no completion for shell %q (bash or zsh)", errUsage, args[0])
}

// complete returns the candidates for words[cword] (words[0] is "gdm").
func complete(words []string, cword int) []string {
	cur := ""
	if cword < len(words) {
		cur = words[cword]
	}
	verb := ""
	positional := 0
	for i := 1; i < cword; i++ {
		w := words[i]
		if strings.HasPrefix(w, "-") {
			if f := lookupFlag(verb, w); f != nil && flagArg(f) != "" && !strings.Contains(w, "=") {
				if i+1 == cword {
					return nil // the flag's value: files, or nothing we know
				}
				i++
			}
			continue
		}
		if verb == "" {
			if _, ok := verbs[w]; ok || w == "reload" {
				verb = w
				continue
			}
		}
		positional++
	}
	switch {
	case strings.HasPrefix(cur, "-"):
		var out []string
		if verb != "" {
			for _, f := range verbFlags(canonicalVerb(verb)) {
				out = appendMatch(out, "--"+f.Name, cur)
			}
		}
		return out
	case verb == "":
		var out []string
		for _, n := range append(verbNames(), "reload") {
			out = appendMatch(out, n, cur)
		}
		return out
	case verb == "completion" && positional == 0:
		return appendMatch(appendMatch(nil, "bash", cur), "zsh", cur)
	case deviceVerbs[verb] && positional == 0:
		var out []string
		for _, n := range deviceNames(words[1:cword]) {
			out = appendMatch(out, n, cur)
		}
		return out
	}
	return nil
}

func canonicalVerb(v string) string {
	if v == "reload" {
		return "load"
	}
	return v
}

// lookupFlag finds the flag a word names among verb's flags (or, before
// the verb, among every verb's: flags may precede it).
func lookupFlag(verb, word string) *flag.Flag {
	name := strings.TrimLeft(word, "-")
	name, _, _ = strings.Cut(name, "=")
	candidates := []string{canonicalVerb(verb)}
	if verb == "" {
		candidates = verbNames()
	}
	for _, v := range candidates {
		for _, f := range verbFlags(v) {
			if f.Name == name {
				return f
			}
		}
	}
	return nil
}

func appendMatch(out []string, candidate, prefix string) []string {
	if strings.HasPrefix(candidate, prefix) {
		out = append(out, candidate)
	}
	return out
}

// deviceNames asks the daemon named by the line's --control (or
// $GDM_CONTROL, or the default) for its devices, giving up after a second:
// a completion never hangs the shell.
func deviceNames(words []string) []string {
	control := os.Getenv("GDM_CONTROL")
	if control == "" {
		control = defaultControl
	}
	for i, w := range words {
		switch {
		case (w == "--control" || w == "-control") && i+1 < len(words):
			control = words[i+1]
		case strings.HasPrefix(w, "--control="), strings.HasPrefix(w, "-control="):
			_, control, _ = strings.Cut(w, "=")
		}
	}
	var all []controlapi.DeviceInfo
	if controlapi.New(control).WithTimeout(time.Second).Call(http.MethodGet, "/v1/devices", nil, nil, &all) != nil {
		return nil
	}
	names := make([]string, len(all))
	for i, d := range all {
		names[i] = d.Name
	}
	return names
}
