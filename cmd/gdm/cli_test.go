package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/internal/testkit"
)

func TestVerbs(t *testing.T) {
	td := startTestDaemon(t, "")
	if st, err := os.Stat(td.control); err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("control socket: %v %v, want a socket of mode 0600", st.Mode(), err)
	}
	a := testkit.Sparse(t, td.dir, "a.img", 8<<20)
	b := testkit.Sparse(t, td.dir, "b.img", 8<<20)
	// In order: each step works on the devices the one before left.
	t.Run("create and show", func(t *testing.T) { verbsCreateAndShow(t, td, a, b) })
	t.Run("load and resume", func(t *testing.T) { verbsLoadAndResume(t, td, a, b) })
	t.Run("rename remove version", func(t *testing.T) { verbsRenameRemoveVersion(t, td) })
}

// verbsCreateAndShow creates lin (two linear lines), z (from stdin) and st
// (read-only striped, from a table file), and checks ls, table, status and
// info against dmsetup's forms.
func verbsCreateAndShow(t *testing.T, td *testDaemon, a, b string) {
	// create from --table lines, and from stdin, and from --table-file.
	td.ok(t, "create", "lin", "--table", "0 8192 linear "+a+" 0", "--table", "8192 8192 linear "+b+" 0")
	if _, errs, code := td.cli("0 2048 zero\n", "create", "z"); code != 0 {
		t.Fatalf("create from stdin: %s", errs)
	}
	tf := filepath.Join(td.dir, "t.table")
	os.WriteFile(tf, []byte("# striped\n0 16384 striped 2 128 "+a+" 0 "+b+" 0\n"), 0o600)
	td.ok(t, "create", "st", "--table-file", tf, "--read-only")

	if out := td.ok(t, "ls"); !strings.Contains(out, "lin\t(16384 sectors, ACTIVE)") || !strings.Contains(out, "st\t") || !strings.Contains(out, "z\t") {
		t.Fatalf("ls:\n%s", out)
	}
	if out := td.ok(t, "table", "lin"); out != "0 8192 linear "+a+" 0\n8192 8192 linear "+b+" 0\n" {
		t.Fatalf("table lin:\n%s", out)
	}
	if out := td.ok(t, "status", "st"); out != "0 16384 striped 2 "+a+" "+b+" 1 AA\n" {
		t.Fatalf("status st: %q", out)
	}
	// dmsetup's forms to the byte: a blank before empty parameters too.
	if out := td.ok(t, "status", "lin"); out != "0 8192 linear \n8192 8192 linear \n" {
		t.Fatalf("status lin: %q", out)
	}
	if out := td.ok(t, "table", "z"); out != "0 2048 zero \n" {
		t.Fatalf("table z: %q", out)
	}
	var info controlapi.DeviceInfo
	if err := json.Unmarshal([]byte(td.ok(t, "info", "st", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if !info.ReadOnly || info.State != "ACTIVE" || !info.LiveTable || info.InactiveTable || info.Sectors != 16384 || len(info.UUID) != 36 {
		t.Fatalf("info st: %+v", info)
	}
	if out := td.ok(t, "info", "lin"); !strings.Contains(out, "State:             ACTIVE (read-write)") || !strings.Contains(out, "Tables present:    LIVE\n") {
		t.Fatalf("info lin:\n%s", out)
	}
}

// verbsLoadAndResume loads, clears, reloads and resumes lin (also with
// --live), and suspends and resumes it.
func verbsLoadAndResume(t *testing.T, td *testDaemon, a, b string) {
	// load (and reload), table --inactive, resume, clear.
	var info controlapi.DeviceInfo
	td.ok(t, "load", "lin", "--table", "0 16384 linear "+a+" 0")
	if out := td.ok(t, "table", "lin", "--inactive"); out != "0 16384 linear "+a+" 0\n" {
		t.Fatalf("inactive table: %q", out)
	}
	if out := td.ok(t, "info", "lin"); !strings.Contains(out, "LIVE & INACTIVE") {
		t.Fatalf("info after load:\n%s", out)
	}
	td.ok(t, "clear", "lin")
	if out := td.ok(t, "table", "lin", "--inactive"); out != "" {
		t.Fatalf("inactive after clear: %q", out)
	}
	td.ok(t, "reload", "lin", "--table", "0 4096 linear "+a+" 0")
	td.ok(t, "resume", "lin")
	if out := td.ok(t, "table", "lin"); out != "0 4096 linear "+a+" 0\n" {
		t.Fatalf("after resume: %q", out)
	}
	td.ok(t, "load", "lin", "--table", "0 8192 linear "+b+" 0")
	td.ok(t, "resume", "lin", "--live")
	json.Unmarshal([]byte(td.ok(t, "info", "lin", "--json")), &info)
	if info.Generation != 3 || info.Sectors != 8192 || info.InactiveTable {
		t.Fatalf("after resume --live: %+v", info)
	}

	// suspend / resume.
	td.ok(t, "suspend", "lin")
	if out := td.ok(t, "info", "lin"); !strings.Contains(out, "SUSPENDED") {
		t.Fatalf("info while suspended:\n%s", out)
	}
	td.ok(t, "suspend", "lin", "--noflush") // already suspended: fine
	td.ok(t, "resume", "lin")
	td.ok(t, "suspend", "lin", "--nolockfs") // dmsetup's flag, for its scripts
	if out := td.ok(t, "info", "lin"); !strings.Contains(out, "SUSPENDED") {
		t.Fatalf("info after suspend --nolockfs:\n%s", out)
	}
	td.ok(t, "resume", "lin")
}

// verbsRenameRemoveVersion renames and removes z, and checks version and
// the table of every device.
func verbsRenameRemoveVersion(t *testing.T, td *testDaemon) {
	td.ok(t, "rename", "z", "zz")
	if out := td.ok(t, "ls", "--json"); !strings.Contains(out, `"zz"`) || strings.Contains(out, `"z"`) {
		t.Fatalf("ls after rename:\n%s", out)
	}
	td.ok(t, "remove", "zz")
	if out := td.ok(t, "version"); !strings.Contains(out, "Daemon version:") || !strings.Contains(out, "linear log-writes snapshot snapshot-merge snapshot-origin striped") {
		t.Fatalf("version:\n%s", out)
	}
	if out := td.ok(t, "table"); !strings.Contains(out, "lin: 0 8192 linear") || !strings.Contains(out, "st: 0 16384 striped") {
		t.Fatalf("table of all:\n%s", out)
	}
}

func TestVerbErrors(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 linear "+a+" 0")
	before := td.ok(t, "table", "d")

	td.fails(t, "line 2: gap before sector 4096", "load", "d", "--table", "0 2048 zero", "--table", "4096 8 zero")
	td.fails(t, "line 1: unknown target type", "create", "x", "--table", "0 8 mirror")
	td.fails(t, "line 1: linear: backing device too small", "load", "d", "--table", "0 4096 linear "+a+" 0")
	td.fails(t, "no such file or directory", "load", "d", "--table", "0 8 linear /nonexistent/x 0")
	td.fails(t, "line 1: striped: length not divisible by number of stripes", "load", "d", "--table", "0 15 striped 2 1 "+a+" 0 "+a+" 8")
	td.fails(t, "device already exists", "create", "d", "--table", "0 8 zero")
	td.fails(t, "no such device", "load", "nope", "--table", "0 8 zero")
	td.fails(t, "no such device", "resume", "nope")
	td.fails(t, "no such device", "suspend", "nope")
	td.fails(t, "no such device", "remove", "nope")
	td.fails(t, "no such device", "info", "nope")
	td.fails(t, "no such device", "rename", "nope", "x")
	td.fails(t, "bad device name", "create", "a/b", "--table", "0 8 zero")
	td.fails(t, "bad device name", "rename", "d", "has space")
	td.fails(t, "no table", "load", "d")
	if _, errs, code := td.cli("", "create"); code != 2 || !strings.Contains(errs, "usage: gdm create") {
		t.Fatalf("create without a name: %d %q", code, errs)
	}
	if _, errs, code := td.cli("", "frobnicate"); code != 2 || !strings.Contains(errs, "unknown verb") {
		t.Fatalf("unknown verb: %d %q", code, errs)
	}
	// Nothing changed by any of it.
	if after := td.ok(t, "table", "d"); after != before {
		t.Fatalf("table changed by refused loads: %q -> %q", before, after)
	}
	if out := td.ok(t, "table", "d", "--inactive"); out != "" {
		t.Fatalf("a refused load left an inactive table: %q", out)
	}
	// No daemon at all: a clear message.
	var out, errb bytes.Buffer
	if code := run([]string{"ls", "--control", filepath.Join(td.dir, "none.sock")}, nil, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "cannot reach the daemon") {
		t.Fatalf("no daemon: %d %q", code, errb.String())
	}
}

// Every flag a verb takes may also come before the verb (`gdm --control S
// create ...`), alone or as --flag=VALUE, and means the same there; a word
// before the verb that is no flag's value is refused as an unknown verb.
func TestFlagsBeforeVerb(t *testing.T) {
	td := startTestDaemon(t, "")
	cli := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := run(args, strings.NewReader(""), &out, &errb)
		return out.String(), errb.String(), code
	}
	if _, errs, code := cli("--control", td.control, "--table", "0 8 zero", "create", "d", "--uuid", "u-1"); code != 0 {
		t.Fatalf("create with flags before the verb: %d %s", code, errs)
	}
	if _, errs, code := cli("--control="+td.control, "--read-only", "create", "--table=0 16 zero", "r"); code != 0 {
		t.Fatalf("create with --flag=VALUE and a boolean before the verb: %d %s", code, errs)
	}
	before, _, _ := cli("--control", td.control, "--json", "info", "d")
	after := td.ok(t, "info", "d", "--json")
	if before != after || !strings.Contains(after, `"uuid": "u-1"`) {
		t.Fatalf("info with --json before the verb:\n%s\nafter it:\n%s", before, after)
	}
	if out := td.ok(t, "info", "r"); !strings.Contains(out, "read-only") {
		t.Fatalf("--read-only before the verb was lost:\n%s", out)
	}
	if _, errs, code := cli("--control", td.control, "--inactive", "--json", "table", "d"); code != 0 || errs != "" {
		t.Fatalf("table with two booleans before the verb: %d %s", code, errs)
	}
	if _, errs, code := cli("--control", td.control, "--force", "remove", "r"); code != 0 {
		t.Fatalf("remove --force before the verb: %d %s", code, errs)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"d", "info"}, 2, `unknown verb "d"`},
		{[]string{"--control", td.control}, 2, "no verb given"},
		{[]string{"--live", "info", "d"}, 2, "gdm: info: usage: flag provided but not defined: -live"},
	} {
		if _, errs, code := cli(c.args...); code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("gdm %q: exit %d, %q; want %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
}

// "--" ends the flags wherever it stands: the words after it are
// positional even when they look like flags; a "--" that is a flag's value
// is only that.
func TestParseInterspersedDashDash(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"a", "--", "-5", "--x"}, []string{"a", "-5", "--x"}},
		{[]string{"--", "-5"}, []string{"-5"}},
		{[]string{"--json", "--", "-5"}, []string{"-5"}},
		{[]string{"a", "--json", "b", "--", "--json"}, []string{"a", "b", "--json"}},
		{[]string{"--name", "--", "a"}, []string{"a"}},
		{[]string{"a", "b"}, []string{"a", "b"}},
	} {
		fs := newFlagSet("test")
		fs.Bool("json", false, "")
		name := fs.String("name", "", "")
		got, err := parseInterspersed(fs, c.args)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%q: got %q, %v; want %q", c.args, got, err, c.want)
		}
		if c.args[0] == "--name" && *name != "--" {
			t.Errorf("--name took %q, want the value \"--\"", *name)
		}
	}
}
