package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// oracleDigest sums up the console of an oracle guest that failed, for the
// head of the failure: the last case that finished and, if a case outran
// the guest's watch (oracleguest's watch), what the watch found, each
// part cut short. The whole console follows it, but CI shows only a
// failure's first and last lines, and a watch's goroutine dumps run to
// hundreds.
func oracleDigest(console string) string {
	var b strings.Builder
	lines := strings.Split(console, "\n")
	last := "none"
	for _, l := range lines {
		if m := caseName.FindStringSubmatch(l); m != nil {
			last = m[1]
		}
	}
	fmt.Fprintf(&b, "digest: the last case that finished: %s\n", last)
	if hung := dmHungIn(console); hung != "" {
		fmt.Fprintf(&b, "digest: the kernel's dm hung in case %s (its op was the one in flight; gdm had none)\n", hung)
	}
	sections := watchSections(lines)
	if len(sections) == 0 {
		b.WriteString("digest: no case outran the guest's watch\n")
	}
	for _, s := range sections {
		for _, l := range s.digest() {
			b.WriteString("digest: " + l + "\n")
		}
	}
	return b.String()
}

var caseName = regexp.MustCompile(`^ORACLE-CASE \{"case":"([^"]*)"`)

// watchSection is one ORACLE-WATCH line and the lines up to the next.
type watchSection struct {
	head string
	body []string
}

func watchSections(lines []string) []watchSection {
	var out []watchSection
	open := false
	for _, l := range lines {
		rest, ok := strings.CutPrefix(l, "ORACLE-WATCH ")
		switch {
		case ok:
			out = append(out, watchSection{head: rest})
			open = true
		case strings.HasPrefix(l, "ORACLE-"): // a report, the hang line: no section's
			open = false
		case open:
			out[len(out)-1].body = append(out[len(out)-1].body, l)
		}
	}
	return out
}

// digest is the part of a section worth the head of a failure.
func (s watchSection) digest() []string {
	switch {
	case strings.Contains(s.head, "still running"):
		// The head says which side had an op in flight; the guest
		// program's own frames say which op.
		return append([]string{cut(s.head, ":")}, firstMatching(s.body, 3, "internal/oracle.")...)
	case strings.HasPrefix(s.head, "D task "):
		f := strings.Fields(s.head)
		name := strings.Join(f[2:min(len(f), 5)], " ") // pid (comm) D
		return append([]string{"D task " + name}, nonEmpty(s.body, 8)...)
	case strings.HasPrefix(s.head, "dm devices"):
		return append([]string{s.head}, nonEmpty(s.body, 6)...)
	case strings.HasPrefix(s.head, "the kernel log"):
		body := nonEmpty(s.body, len(s.body))
		return append([]string{s.head}, body[max(0, len(body)-12):]...)
	case strings.HasPrefix(s.head, "gdm's goroutines"):
		// Idle connections wait in nbdserver, listeners and the AIO
		// reaper in theirs; a hang inside gdm shows in its targets' or
		// table's frames.
		return append([]string{s.head + " (its frames in targets and table, first 10):"},
			firstMatching(s.body, 10, "gdm/pkg/targets.", "gdm/pkg/table.")...)
	default:
		return []string{s.head}
	}
}

// cut is s up to sep, without it.
func cut(s, sep string) string {
	before, _, _ := strings.Cut(s, sep)
	return before
}

// firstMatching is up to n distinct lines of body that contain any of
// subs, trimmed.
func firstMatching(body []string, n int, subs ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range body {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "created by ") {
			continue
		}
		for _, s := range subs {
			if strings.Contains(l, s) && !seen[l] && len(out) < n {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
	return out
}

// nonEmpty is up to n of body's lines that are not blank, trimmed.
func nonEmpty(body []string, n int) []string {
	var out []string
	for _, l := range body {
		if l = strings.TrimSpace(l); l != "" && len(out) < n {
			out = append(out, l)
		}
	}
	return out
}

func TestOracleDigest(t *testing.T) {
	console := strings.Join([]string{
		`ORACLE-CASE {"case":"snapshot-discard-P-8-off","seed":218}`,
		`ORACLE-WATCH snapshot-merge-P-8 still running after 4m0s (I/O in flight on side 0; 0 is dm, 1 gdm, -1 neither): the guest program's goroutines:`,
		`goroutine 1 [syscall, 3 minutes]:`,
		`github.com/gdm-project/gdm/internal/oracle.(*timing).do(0x2d3e10872208, 0x0, 0x2d3e10a86bd0)`,
		`ORACLE-WATCH D task 211 (oracleguest) D 1 1 1 0`,
		`[<0>] io_schedule+0x42/0x70`,
		`[<0>] __blkdev_direct_IO_simple+0x1b4/0x2a0`,
		`ORACLE-WATCH in flight on dm-0 (reads writes): 1 0`,
		`ORACLE-WATCH dm devices (name:attr:open; attr s is suspended), err <nil>:`,
		`snapshot-merge-P-8:L--w:1`,
		`ORACLE-WATCH the kernel log's end, err <nil>:`,
		`[  1.0] early`,
		`[242.0] INFO: task oracleguest:211 blocked for more than 120 seconds.`,
		`ORACLE-DM-HUNG snapshot-merge-P-8`,
		`ORACLE-WATCH gdm's goroutines follow`,
		`goroutine 13 [IO wait]:`,
		`github.com/gdm-project/gdm/pkg/nbdserver.(*Server).Serve(0x3b8e0919888)`,
		`github.com/gdm-project/gdm/pkg/targets.(*rangeLock).lock(0x1, 0x2)`,
	}, "\n")
	got := oracleDigest(console)
	for _, want := range []string{
		"the last case that finished: snapshot-discard-P-8-off",
		"digest: snapshot-merge-P-8 still running after 4m0s (I/O in flight on side 0; 0 is dm, 1 gdm, -1 neither)\n",
		"dm hung in case snapshot-merge-P-8",
		"(*timing).do(0x2d3e10872208, 0x0",
		"digest: D task 211 (oracleguest) D\n",
		"__blkdev_direct_IO_simple",
		"in flight on dm-0 (reads writes): 1 0",
		"snapshot-merge-P-8:L--w:1",
		"blocked for more than 120 seconds",
		"(*rangeLock).lock",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("digest lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "ORACLE-DM-HUNG"); n != 0 {
		t.Errorf("digest quotes the hang line %d times, want none (it says so in its own words):\n%s", n, got)
	}
	for _, not := range []string{"nbdserver", "goroutine 13"} {
		if strings.Contains(got, not) {
			t.Errorf("digest has %q, which it should leave to the whole console:\n%s", not, got)
		}
	}
	if got := oracleDigest("GDM-VM-START\n"); !strings.Contains(got, "no case outran the guest's watch") {
		t.Errorf("digest of a console without a watch: %q", got)
	}
}

func TestStopWriter(t *testing.T) {
	stops := 0
	w := &stopWriter{stopOn: "ORACLE-DM-HUNG", stop: func() { stops++ }}
	for _, p := range []string{"boot\r\nORACLE-WATCH x (ORACLE-DM-HUNG in the middle of a line)\r\n", "ORACLE-DM", "-HU", "NG linear-w"} {
		w.Write([]byte(p))
	}
	if stops != 0 {
		t.Fatal("stop called before the marker's line was whole: the caller would read a cut case name")
	}
	w.Write([]byte("hole\r\n"))
	if stops != 1 || !w.stopped() {
		t.Errorf("stop called %d times (stopped %t), want once: on the line that starts with the marker, written in pieces", stops, w.stopped())
	}
	w.Write([]byte("ORACLE-DM-HUNG again\r\n"))
	if stops != 1 {
		t.Errorf("stop called %d times, want once: the first marker line stops the guest", stops)
	}
	if got := dmHungIn(strings.ReplaceAll(w.String(), "\r\n", "\n")); got != "linear-whole" {
		t.Errorf("dmHungIn = %q, want linear-whole", got)
	}
	quiet := &stopWriter{stop: func() { t.Error("stop called without a stopOn") }}
	quiet.Write([]byte("ORACLE-DM-HUNG x\n"))
}
