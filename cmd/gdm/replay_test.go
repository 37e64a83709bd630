package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/targets"
)

// writeLog drives a log-writes target (built as a table builds it) through
// a write, a flush, mark "one", a FUA write and mark "two", and destroys
// it. Sector 0 ends as 'b', sector 1 as 'c'.
func writeLog(t *testing.T, dir string) (dev, log string) {
	t.Helper()
	ctx := context.Background()
	dev, log = testkit.Sparse(t, dir, "dev", 8192), testkit.Sparse(t, dir, "log", 1<<20)
	tp, err := targets.Lookup("log-writes")
	if err != nil {
		t.Fatal(err)
	}
	set := targets.NewDevSet(false)
	defer set.Close()
	tg, err := tp.New([]string{dev, log}, 16, set)
	if err != nil {
		t.Fatal(err)
	}
	tg.(targets.Resumer).Resume(ctx)
	sector := func(c byte) []byte { return bytes.Repeat([]byte{c}, 512) }
	tg.WriteAt(ctx, sector('a'), 0, 0)
	tg.(targets.FlushRequester).FlushRequest(ctx)
	tg.(targets.Messenger).Message(ctx, []string{"mark", "one"})
	tg.WriteAt(ctx, sector('b'), 0, 0)
	tg.WriteAt(ctx, sector('c'), 512, targets.FUA)
	tg.(targets.Messenger).Message(ctx, []string{"mark", "two"})
	if err := tg.(targets.Destroyer).Destroy(); err != nil {
		t.Fatal(err)
	}
	return dev, log
}

func gdm(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// heads is the first byte of each sector of the file, '.' for zero.
func heads(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := ""
	for i := 0; i < len(b); i += 512 {
		s += string(max(b[i], '.'))
	}
	return s
}

func TestReplayDump(t *testing.T) {
	_, log := writeLog(t, t.TempDir())
	out, errs, code := gdm("replay", "--dump", log)
	want := `log version 1, sector size 512, 7 entries
0: sector 0, 1 sectors, flags NONE
1: sector 0, 0 sectors, flags FLUSH
2: sector 0, 0 sectors, flags MARK, mark "one"
3: sector 1, 1 sectors, flags FUA
4: sector 0, 0 sectors, flags MARK, mark "two"
5: sector 0, 1 sectors, flags NONE
6: sector 0, 0 sectors, flags MARK, mark "dm-log-writes-end"
`
	if code != 0 || out != want {
		t.Fatalf("exit %d %s\n got:\n%s\nwant:\n%s", code, errs, out, want)
	}
	// The window flags pick the entries listed as they pick those replayed.
	lines := strings.SplitAfter(want, "\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--limit", "2"}, lines[0] + lines[1] + lines[2]},
		{[]string{"--end-mark", "one"}, strings.Join(lines[:4], "")},
		{[]string{"--start-mark", "one", "--end-mark", "two"}, lines[0] + lines[4] + lines[5]},
		{[]string{"--start-mark", "two", "--limit", "1"}, lines[0] + lines[6]},
	} {
		out, errs, code := gdm(append([]string{"replay", "--dump", log}, c.args...)...)
		if code != 0 || out != c.want {
			t.Errorf("--dump %q: exit %d %s\n got:\n%s\nwant:\n%s", c.args, code, errs, out, c.want)
		}
	}
}

func TestReplayStops(t *testing.T) {
	dir := t.TempDir()
	dev, log := writeLog(t, dir)
	for i, c := range []struct {
		args []string
		want string
	}{
		{nil, "bc.............."},
		{[]string{"--limit", "1"}, "a..............."},
		{[]string{"--end-mark", "one"}, "a..............."},
		{[]string{"--end-mark", "two"}, "ac.............."},
		{[]string{"--start-mark", "two"}, "b..............."},
	} {
		out := testkit.Sparse(t, dir, "r"+string(rune('0'+i)), 8192)
		if _, errs, code := gdm(append([]string{"replay", log, out}, c.args...)...); code != 0 {
			t.Fatalf("%q: exit %d: %s", c.args, code, errs)
		}
		if got := heads(t, out); got != c.want {
			t.Errorf("%q: %q, want %q", c.args, got, c.want)
		}
	}
	if heads(t, dev) != "bc.............." {
		t.Fatalf("the device is %q", heads(t, dev))
	}
}

// --fsck runs at each --check point and sees the device as replayed so
// far; a failing command stops the replay and exits 1.
func TestReplayChecks(t *testing.T) {
	dir := t.TempDir()
	_, log := writeLog(t, dir)
	out := testkit.Sparse(t, dir, "out", 8192)
	seen := filepath.Join(dir, "seen")
	check := `printf '%s:%s:%s:%s ' "$GDM_REPLAY_ENTRY" "$GDM_REPLAY_FLAGS" "$GDM_REPLAY_MARK" "$(head -c 1 ` + out + ` | tr '\0' .)" >>` + seen
	for _, c := range []struct {
		when, want string
	}{
		{"mark", "2:MARK:one:a 4:MARK:two:a 6:MARK:dm-log-writes-end:b "},
		{"flush", "1:FLUSH::a "},
		{"fua", "3:FUA::a "},
		{"3", "2:MARK:one:a 5:NONE::b "},
	} {
		os.Remove(seen)
		os.WriteFile(out, make([]byte, 8192), 0o600)
		if _, errs, code := gdm("replay", log, out, "--fsck", check, "--check", c.when); code != 0 {
			t.Fatalf("--check %s: exit %d: %s", c.when, code, errs)
		}
		if b, _ := os.ReadFile(seen); string(b) != c.want {
			t.Errorf("--check %s: the command saw %q, want %q", c.when, b, c.want)
		}
	}
	os.WriteFile(out, make([]byte, 8192), 0o600)
	_, errs, code := gdm("replay", log, out, "--fsck", "test $GDM_REPLAY_ENTRY != 4", "--check", "mark")
	if code != 1 || !strings.Contains(errs, `check failed after entry 4: sector 0, 0 sectors, flags MARK, mark "two"`) {
		t.Fatalf("failing check: exit %d, %q", code, errs)
	}
	if got := heads(t, out); got != "ac.............." {
		t.Fatalf("after the failed check the device is %q, want it as the check saw it", got)
	}
}

func TestReplayUsage(t *testing.T) {
	dir := t.TempDir()
	_, log := writeLog(t, dir)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replay", log}, 2, "LOG and DEV, or --dump and LOG"},
		{[]string{"replay", "--dump", log, log}, 2, "LOG and DEV, or --dump and LOG"},
		{[]string{"replay", "--dump", log, "--no-discard"}, 2, "--dump replays nothing"},
		{[]string{"replay", "--dump", log, "--fsck", "true", "--check", "fua"}, 2, "--dump replays nothing"},
		{[]string{"replay", "--dump", log, "--end-mark", "three"}, 1, "end mark not in the log"},
		{[]string{"replay", log, log, "--fsck", "true"}, 2, "--fsck and --check go together"},
		{[]string{"replay", log, log, "--fsck", "true", "--check", "often"}, 2, "not \"often\""},
		{[]string{"replay", "--dump", filepath.Join(dir, "dev")}, 1, "not a write log"},
		{[]string{"replay", log, filepath.Join(dir, "nope")}, 1, "no such file"},
		{[]string{"replay", log, testkit.Sparse(t, dir, "o", 8192), "--end-mark", "three"}, 1, "end mark not in the log"},
		{[]string{"replay", log, testkit.Sparse(t, dir, "p", 8192), "--start-mark", "three"}, 1, "start mark not in the log"},
	} {
		_, errs, code := gdm(c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("gdm %q: exit %d, %q; want %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
}
