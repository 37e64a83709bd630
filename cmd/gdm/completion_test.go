package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// TestMain lets the test binary be gdm itself (for the shells the
// completion tests start): with GDM_TEST_BE_GDM=1 it runs gdm's main.
func TestMain(m *testing.M) {
	if os.Getenv("GDM_TEST_BE_GDM") == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// gdmOnPath makes a directory whose gdm is this test binary being gdm.
func gdmOnPath(t *testing.T) []string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(self, filepath.Join(dir, "gdm")); err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(), "GDM_TEST_BE_GDM=1", "PATH="+dir+":"+os.Getenv("PATH"))
}

// completionCases are command lines (the last word being completed) and
// what completing it must offer, in both shells.
var completionCases = []struct {
	words []string
	want  []string
}{
	{[]string{"gdm", "re"}, []string{"remove", "rename", "replay", "resume", "reload"}},
	{[]string{"gdm", "resume", ""}, []string{"alpha", "beta"}},
	{[]string{"gdm", "--control", "$C", "suspend", "a"}, []string{"alpha"}},
	{[]string{"gdm", "reload", "b"}, []string{"beta"}},
	{[]string{"gdm", "create", "--r"}, []string{"--read-only"}},
	{[]string{"gdm", "suspend", "alpha", "--"}, []string{"--control", "--json", "--noflush", "--nolockfs", "--timeout"}},
	{[]string{"gdm", "create", "--table-file", ""}, nil}, // the shell completes files
	{[]string{"gdm", "create", ""}, nil},                 // a new name
	{[]string{"gdm", "rename", "alpha", ""}, nil},
	{[]string{"gdm", "completion", ""}, []string{"bash", "zsh"}},
}

func checkCompletions(t *testing.T, shell string, got func(words []string) []string, control string) {
	t.Helper()
	for _, c := range completionCases {
		words := make([]string, len(c.words))
		for i, w := range c.words {
			words[i] = strings.ReplaceAll(w, "$C", control)
		}
		if g := got(words); !reflect.DeepEqual(g, c.want) {
			t.Errorf("%s: completing %q: got %q, want %q", shell, c.words, g, c.want)
		}
	}
}

// lines splits a shell's output into candidates (none for empty output).
func lines(out []byte) []string {
	s := strings.TrimRight(string(out), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// bash with `source <(gdm completion bash)` completes verbs, flags and the
// daemon's device names.
func TestBashCompletion(t *testing.T) {
	bash := testkit.NeedTool(t, "bash")
	td := startTestDaemon(t, "")
	td.ok(t, "create", "alpha", "--table", "0 8 zero")
	td.ok(t, "create", "beta", "--table", "0 8 zero")
	env := append(gdmOnPath(t), "GDM_CONTROL="+td.control)
	checkCompletions(t, "bash", func(words []string) []string {
		script := `source <(gdm completion bash)
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _gdm
[ ${#COMPREPLY[@]} -eq 0 ] || printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command(bash, append([]string{"-c", script, "bash"}, words...)...)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash: %v", err)
		}
		return lines(out)
	}, td.control)
}

// zsh with `source <(gdm completion zsh)` registers _gdm for gdm, and
// _gdm offers the same candidates (compdef, compadd and _files stubbed:
// they need compinit and a live line editor).
func TestZshCompletion(t *testing.T) {
	zsh := testkit.NeedTool(t, "zsh") // Debian package zsh
	td := startTestDaemon(t, "")
	td.ok(t, "create", "alpha", "--table", "0 8 zero")
	td.ok(t, "create", "beta", "--table", "0 8 zero")
	env := append(gdmOnPath(t), "GDM_CONTROL="+td.control)
	checkCompletions(t, "zsh", func(words []string) []string {
		script := `typeset -A _comps; compdef() { _comps[$2]=$1 }
source <(gdm completion zsh)
[[ ${_comps[gdm]} == _gdm ]] || { print "not registered" >&2; exit 1 }
compadd() { shift 2; print -l -- "$@" }
_files() { }
words=("$@"); CURRENT=$#; _gdm`
		cmd := exec.Command(zsh, append([]string{"-f", "-c", script, "zsh"}, words...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("zsh: %v\n%s", err, out)
		}
		return lines(out)
	}, td.control)
}
