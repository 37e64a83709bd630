package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// gdm message: arguments, the reply printed as dmsetup prints it, and
// refusals exiting 1 with the target's reason.
func TestMessageVerb(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 dust "+a+" 0 512", "--table", "2048 8 linear "+a+" 0")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"message", "d", "0"}, "wrong number of arguments"},
		{[]string{"message", "d"}, "wrong number of arguments"},
		{[]string{"message", "d", "x", "enable"}, `sector "x" is not a number`},
	} {
		_, errs, code := td.cli("", c.args...)
		if code != 2 || !strings.Contains(errs, c.want) || !strings.Contains(errs, "usage: gdm message NAME SECTOR MESSAGE...") {
			t.Errorf("gdm %s: exit %d, %q; want 2 and %q", strings.Join(c.args, " "), code, errs, c.want)
		}
	}
	var help bytes.Buffer
	fs := messageFlags(new(clientFlags))
	fs.SetOutput(&help)
	fs.Usage()
	if !strings.Contains(help.String(), "never saved") || !strings.Contains(help.String(), "-control") {
		t.Errorf("message -h:\n%s", help.String())
	}
	if _, _, code := td.cli("", "message", "-h"); code != 0 {
		t.Errorf("message -h: exit %d", code)
	}
	if out := td.ok(t, "help"); !strings.Contains(out, "message NAME SECTOR MESSAGE...") {
		t.Errorf("help does not list message:\n%s", out)
	}

	for _, c := range []struct {
		args []string
		out  string
	}{
		{[]string{"addbadblock", "60"}, ""}, // no reply: nothing printed
		{[]string{"queryblock", "60"}, "dust_query_block: block 60 found in badblocklist\n"},
		{[]string{"addbadblock", "61"}, ""},
		{[]string{"listbadblocks"}, "60\n61\n"}, // ends in a newline already
		{[]string{"countbadblocks"}, "countbadblocks: 2 badblock(s) found\n"},
	} {
		if out := td.ok(t, append([]string{"message", "d", "100"}, c.args...)...); out != c.out {
			t.Errorf("message %q: stdout %q, want %q", c.args, out, c.out)
		}
	}
	if out := td.ok(t, "message", "d", "0", "countbadblocks", "--json"); !strings.Contains(out, `"reply": "countbadblocks: 2 badblock(s) found"`) {
		t.Errorf("--json: %q", out)
	}
	// Words after "--" pass as they are, a leading "-" too.
	var errb bytes.Buffer
	code := run([]string{"message", "--control", td.control, "d", "0", "--", "queryblock", "-5"}, nil, &errb, &errb)
	if code != 1 || errb.String() != "gdm: message d: dust: invalid block number '-5': invalid argument\n" {
		t.Errorf("message d 0 -- queryblock -5: exit %d, %q", code, errb.String())
	}
	td.fails(t, "dust: dust_add_block: block 60 already in badblocklist: invalid argument", "message", "d", "0", "addbadblock", "60")
	// Split again as the kernel splits a message: one argument of two
	// words is two words, an escaped space keeps them one.
	if out := td.ok(t, "message", "d", "0", "queryblock 60"); out != "dust_query_block: block 60 found in badblocklist\n" {
		t.Errorf("message d 0 'queryblock 60': %q", out)
	}
	td.fails(t, "unrecognized message 'queryblock 60'", "message", "d", "0", `queryblock\ 60`)
	if _, errs, code := td.cli("", "message", "d", "0", " "); code != 2 || !strings.Contains(errs, "empty message") {
		t.Errorf("message d 0 ' ': exit %d, %q", code, errs)
	}
	td.fails(t, "target type takes no messages", "message", "d", "2048", "enable")
	td.fails(t, "outside the table", "message", "d", "2056", "enable")
	td.fails(t, "no such device", "message", "nope", "0", "enable")
}
