package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/targets"
)

// manText is the man page's roff with requests and font escapes removed:
// the words a reader sees, unwrapped.
func manText(src string) string {
	fonts := regexp.MustCompile(`\\f[BIRP]`)
	var out []string
	for _, line := range strings.Split(src, "\n") {
		if strings.HasPrefix(line, ".TH") || strings.HasPrefix(line, ".SH") {
			continue
		}
		line = strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(line, ".BI "), ".B "), `\&`)
		line = fonts.ReplaceAllString(line, "")
		line = strings.NewReplacer(`\-`, "-", `\e`, `\`, `" `, "", `"`, "").Replace(line)
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// gdm(8) says what `gdm -h` and every `gdm VERB -h` say: each verb's usage
// and help, each of its flags with its help, and each target's syntax; so
// adding a verb, a flag or a target without it showing in the man page
// fails here.
func TestManPageMatchesHelp(t *testing.T) {
	text := manText(manPage())
	var help bytes.Buffer
	printUsage(&help)
	// Every entry of gdm -h is a verb's or a target's usage and help; each
	// must be in the man page, and nothing else may be listed in gdm -h.
	entries := map[string]string{}
	for _, v := range verbNames() {
		entries[verbs[v].usage] = verbs[v].help
	}
	for _, n := range targets.TypeNames() {
		if tp, _ := targets.Lookup(n); tp.Summary != "" {
			entries[strings.TrimSpace(n+" "+tp.Syntax)] = tp.Summary
		}
	}
	listed := 0
	for _, line := range strings.Split(help.String(), "\n") {
		if !strings.HasPrefix(line, "  ") {
			continue
		}
		listed++
		words := strings.Fields(line)
		found := false
		for usage, h := range entries {
			if strings.Join(words, " ") == strings.Join(strings.Fields(usage+" "+h), " ") {
				found = true
			}
		}
		if !found {
			t.Errorf("gdm -h lists %q, which is no verb's or target's usage and help", line)
		}
	}
	if listed != len(entries) {
		t.Errorf("gdm -h lists %d entries, want %d", listed, len(entries))
	}
	for usage, h := range entries {
		if !strings.Contains(text, usage) || !strings.Contains(text, h) {
			t.Errorf("gdm(8) lacks %q: %q", usage, h)
		}
	}
	flags := 0
	for _, v := range verbNames() {
		for _, f := range verbFlags(v) {
			if _, usage := flag.UnquoteUsage(f); !strings.Contains(text, "--"+f.Name) || !strings.Contains(text, usage) {
				t.Errorf("gdm %s -h has flag --%s (%q); gdm(8) does not", v, f.Name, usage)
			}
			flags++
		}
	}
	if flags < 30 {
		t.Fatalf("only %d flags found: verbFlags broke", flags)
	}
}

// man(1) renders the page without a warning.
func TestManPageLints(t *testing.T) {
	man := testkit.NeedTool(t, "man") // Debian package man-db
	page := filepath.Join(t.TempDir(), "gdm.8")
	os.WriteFile(page, []byte(manPage()), 0o600)
	cmd := exec.Command(man, "--warnings", "-E", "UTF-8", "-l", page)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("man --warnings: %v\n%s", err, stderr.String())
	}
	if !bytes.Contains(out, []byte("TABLES")) || !bytes.Contains(out, []byte("striped")) {
		t.Fatalf("rendered page lacks its sections:\n%s", out)
	}
}
