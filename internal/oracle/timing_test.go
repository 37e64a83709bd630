package oracle

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/pkg/table"
)

// A gdm op shorter than its delay fails; long enough passes.
func TestCheckDelay(t *testing.T) {
	op := Op{Kind: Read, Len: 512, Delay: 50 * time.Millisecond}
	el := func(d time.Duration) Result { return Result{Elapsed: d} }
	if d := checkDelay(op, "gdm", el(50*time.Millisecond)); d != "" {
		t.Errorf("long enough: %s", d)
	}
	if d := checkDelay(op, "gdm", el(49*time.Millisecond)); !strings.Contains(d, "gdm took 49ms") {
		t.Errorf("gdm short: %q", d)
	}
	if d := checkDelay(Op{Kind: Read}, "gdm", el(0)); d != "" {
		t.Errorf("an op without delay: %q", d)
	}
}

// A held op that a suspend did not let go (it took its whole delay) is
// named, side by side.
func TestCheckCut(t *testing.T) {
	op := Op{Kind: SuspendDuring, Inner: Read, Delay: 3 * time.Second}
	if d := checkCut(op, "dm", "gdm", Result{Elapsed: time.Second}, Result{Elapsed: 900 * time.Millisecond}); d != "" {
		t.Errorf("both released: %q", d)
	}
	if d := checkCut(op, "dm", "gdm", Result{Elapsed: time.Second}, Result{Elapsed: 3 * time.Second}); !strings.Contains(d, "gdm held it 3s") {
		t.Errorf("gdm kept it: %q", d)
	}
}

// The least overhead of a class decides the upper bound: one slow op
// among fast ones passes, a class that is always slow on gdm fails.
func TestTimingSummary(t *testing.T) {
	var tm timing
	tm.reset()
	d := 20 * time.Millisecond
	tm.least[0][d], tm.least[1][d] = time.Millisecond, 30*time.Millisecond
	tm.most[0][d], tm.most[1][d] = d-dmTick, d+30*time.Millisecond
	rep := &Report{}
	tm.summary(rep, "dm", "gdm")
	if !rep.OK() || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "20ms: dm +1ms, gdm +30ms") {
		t.Fatalf("within slack: %+v", rep)
	}
	tm.least[1][d] = gdmSlack + time.Millisecond
	rep = &Report{}
	tm.summary(rep, "dm", "gdm")
	if rep.OK() || !strings.Contains(rep.Diffs[0], "more than") {
		t.Fatalf("over slack passed: %+v", rep)
	}
	tm.least[1][d] = 0
	tm.most[0][d] = d - dmTick - time.Millisecond // dm never delayed this class
	rep = &Report{}
	tm.summary(rep, "dm", "gdm")
	if rep.OK() || !strings.Contains(rep.Diffs[0], "no op on dm took it") {
		t.Fatalf("a class dm never delayed passed: %+v", rep)
	}
}

// An op is held until At after its side's load, and one that finished
// past Until is reported as late.
func TestTimingDo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(path, make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	dev, err := OpenDevice(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	var tm timing
	tm.reset()
	tm.load(1, func() error { return nil })
	op := Op{Kind: Read, Len: 512, At: 30 * time.Millisecond, Until: time.Hour, Delay: time.Millisecond}
	if _, late := tm.do(1, dev, op); late != "" {
		t.Fatalf("in time, reported late: %s", late)
	}
	if since := time.Since(tm.loaded[1].after); since < op.At {
		t.Fatalf("op ran %v after load, before its At %v", since, op.At)
	}
	if _, ok := tm.least[1][time.Millisecond]; !ok {
		t.Fatal("a delayed op's overhead was not kept")
	}
	tm.loaded[1] = loadTime{before: time.Now().Add(-time.Hour), after: time.Now().Add(-time.Hour)}
	if _, late := tm.do(1, dev, Op{Kind: Read, Len: 512, At: time.Millisecond, Until: time.Minute}); !strings.Contains(late, "past 1m0s") {
		t.Fatalf("late op: %q", late)
	}
}

// Every fault case's table parses, its ops stay inside the device, and
// (corrupt_bio_byte counting within one request) none but the whole-device
// reads is larger than 64 KiB.
func TestFaultCases(t *testing.T) {
	devs := []string{"/a", "/b", "/c", "/d"}
	for _, c := range faultCases() {
		if _, err := table.Parse(Bind(c.Table, devs)); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		size, _ := Boundaries(c.Table)
		for _, op := range c.Script {
			if op.Off < 0 || op.Off+op.Len > size || op.Off%512 != 0 || op.Len%512 != 0 {
				t.Errorf("%s: %v outside a %d-byte device", c.Name, op, size)
			}
			if op.Len > 65536 && op.Len != 1<<20 && op.At == 0 {
				t.Errorf("%s: %v is larger than one request", c.Name, op)
			}
		}
	}
}

// Each timed op of a flakey cycle lies, from At to Until, inside one up or
// one down interval of its table, and the script has ops in both.
func TestFlakeyWindows(t *testing.T) {
	for _, c := range faultCases() {
		f := strings.Fields(c.Table)
		if len(f) < 7 || f[2] != "flakey" {
			continue
		}
		up, _ := strconv.Atoi(f[5])
		down, _ := strconv.Atoi(f[6])
		state := func(d time.Duration) bool { // up?
			return int(d/time.Second)%(up+down) < up
		}
		seen := map[bool]bool{}
		for _, op := range c.Script {
			if op.At == 0 {
				continue
			}
			if state(op.At) != state(op.Until-time.Nanosecond) || op.Until <= op.At {
				t.Errorf("%s: %v: [%v, %v) crosses an interval", c.Name, op, op.At, op.Until)
			}
			if op.At%time.Second < 100*time.Millisecond || op.Until%time.Second == 0 {
				t.Errorf("%s: %v starts or ends on an interval's edge", c.Name, op)
			}
			seen[state(op.At)] = true
		}
		if up > 0 && up < 60 && (!seen[true] || !seen[false]) {
			t.Errorf("%s: timed ops in up %v, down %v", c.Name, seen[true], seen[false])
		}
	}
}
