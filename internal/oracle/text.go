package oracle

import (
	"strings"
)

// compareText compares table and status text, device names made $N
// (under devices' $uK). A
// table with a crypt target compares twice: as printed (dm masks keys
// with zeros) and with keys shown. Status lines of log-writes targets
// compare by LogWritesStatusDiff, each other line as text.
func (rn *Runner) compareText(rep *Report, name, when string) {
	for _, q := range []struct {
		what string
		get  func(Side) (string, error)
	}{
		{"table", func(s Side) (string, error) { return s.Table(name) }},
		{"status", func(s Side) (string, error) { return s.Status(name) }},
	} {
		a, errA := q.get(rn.A)
		b, errB := q.get(rn.B)
		if errA != nil || errB != nil {
			rep.addf("%s %s: %s: %v; %s: %v", q.what, when, rn.A.Name(), errA, rn.B.Name(), errB)
			continue
		}
		a, b = rn.unbind(0, a), rn.unbind(1, b)
		switch q.what {
		case "table":
			a = rn.flakeyBlank(rep, a)
			if hasTarget(a, "crypt") && rn.cryptKeys(rep, name, when) {
				continue // gdm prints keys: compared with keys shown only
			}
		case "status":
			if hasTarget(a, "log-writes") {
				rn.logFull = strings.Contains(a, "logging_disabled")
				a, b = rn.logStatus(rep, when, a, b)
			}
		}
		if d := textDiff(q.what+" "+when, rn.A.Name(), rn.B.Name(), a, b); d != "" {
			rep.Diffs = append(rep.Diffs, d)
		}
	}
}

// expect checks that side A's status of the devices names, after the
// script, holds every text of want (a case's Expect).
func (rn *Runner) expect(rep *Report, names, want []string) {
	if len(want) == 0 {
		return
	}
	var all []string
	for _, nm := range names {
		st, err := rn.A.Status(nm)
		if err != nil {
			rep.addf("status of %s on %s: %v", nm, rn.A.Name(), err)
			return
		}
		all = append(all, rn.unbind(0, st))
	}
	text := strings.Join(all, "")
	for _, w := range want {
		if !strings.Contains(text, w) {
			rep.addf("the case expects %s's status to hold %q, and it is %q: the case does not do what it is for", rn.A.Name(), w, text)
		}
	}
}

// flakeyBlank is oldFlakeyBlank on dm's table text when gdm is side B.
func (rn *Runner) flakeyBlank(rep *Report, a string) string {
	if isDM(rn.B) {
		return a
	}
	a, blank := oldFlakeyBlank(a)
	if blank {
		rep.note(flakeyBlankNote)
	}
	return a
}

// cryptKeys compares the tables with keys shown. It says whether B
// could not print them apart (a gdm without --showkeys, whose plain
// table shows keys where dm's has zeros): then the table compared here
// stands for both forms, with a note.
func (rn *Runner) cryptKeys(rep *Report, name, when string) (only bool) {
	a, _, errA := rn.A.TableKeys(name)
	b, ok, errB := rn.B.TableKeys(name)
	if errB == nil && !ok {
		b, errB = rn.B.Table(name)
		rep.note(rn.B.Name() + " has no table --showkeys: its table (with keys) compared with dmsetup table --showkeys only")
		only = true
	}
	if errA != nil || errB != nil {
		rep.addf("table --showkeys %s: %s: %v; %s: %v", when, rn.A.Name(), errA, rn.B.Name(), errB)
		return only
	}
	a, b = rn.unbind(0, a), rn.unbind(1, b)
	if d := textDiff("table --showkeys "+when, rn.A.Name(), rn.B.Name(), rn.flakeyBlank(rep, a), b); d != "" {
		rep.Diffs = append(rep.Diffs, d)
	}
	return only
}

// logStatus compares the log-writes lines of two status texts with
// LogWritesStatusDiff and returns both texts without them, for the rest
// to compare as text.
func (rn *Runner) logStatus(rep *Report, when, a, b string) (string, string) {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(la) != len(lb) {
		return a, b
	}
	for i := range la {
		if hasTarget(la[i], "log-writes") && hasTarget(lb[i], "log-writes") {
			if d := LogWritesStatusDiff(la[i], lb[i]); d != "" {
				rep.addf("status %s: %s", when, d)
			}
			la[i], lb[i] = "(log-writes)", "(log-writes)"
		}
	}
	rep.note("log-writes status compared only in whether logging stopped: its counts follow how requests were split")
	return strings.Join(la, "\n"), strings.Join(lb, "\n")
}

// hasTarget says whether a table or status text has a line of target typ.
func hasTarget(text, typ string) bool {
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == typ {
			return true
		}
	}
	return false
}
