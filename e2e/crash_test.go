package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// After writes followed by FLUSH are acknowledged, kill -9 the daemon and
// start it again on the same state dir: devices are back as they were and
// the flushed data reads back intact.
func TestKill9KeepsDevicesAndFlushedData(t *testing.T) {
	testkit.NeedTool(t, "qemu-io")
	d := startDaemon(t, "")
	a := testkit.Sparse(t, d.dir, "a.img", 32<<20)
	b := testkit.Sparse(t, d.dir, "b.img", 32<<20)
	d.gdm("create", "k", "--table", "0 32768 striped 2 128 "+a+" 0 "+b+" 0", "--table", "32768 8192 linear "+a+" 16384")
	d.gdm("load", "k", "--table", "0 8192 zero")
	d.gdm("create", "other", "--table", "0 2048 linear "+b+" 20000", "--read-only")
	run(t, "qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 8M", "-c", "write -P 0xa5 16M 4M", "-c", "flush", d.uri("k"))
	before := d.gdm("info", "--json")
	tableBefore := d.gdm("table")
	inactiveBefore := d.gdm("table", "k", "--inactive")

	d.kill9()
	d.start()

	if after := d.gdm("info", "--json"); after != before {
		t.Fatalf("devices after kill -9 differ:\n%s\nwant\n%s", after, before)
	}
	if got := d.gdm("table"); got != tableBefore {
		t.Fatalf("tables after restart:\n%s\nwant\n%s", got, tableBefore)
	}
	if got := d.gdm("table", "k", "--inactive"); got != inactiveBefore {
		t.Fatalf("inactive table after restart: %q, want %q", got, inactiveBefore)
	}
	out := run(t, "qemu-io", "-f", "raw", "-r", "-c", "read -P 0x5a 0 8M", "-c", "read -P 0xa5 16M 4M", "-c", "read -P 0 12M 4M", d.uri("k"))
	if strings.Contains(out, "verification failed") || strings.Count(out, "read ") != 3 {
		t.Fatalf("flushed data after kill -9:\n%s", out)
	}
}

// A remove right after the client disconnects leaves the daemon with no
// backing file open, and the name is free at once.
func TestRemoveLeavesNoFileOpen(t *testing.T) {
	testkit.NeedTool(t, "qemu-io")
	d := startDaemon(t, "")
	files := t.TempDir()
	a := testkit.Sparse(t, files, "a.img", 8<<20)
	b := testkit.Sparse(t, files, "b.img", 8<<20)
	for i := range 3 {
		d.gdm("create", "x", "--table", "0 8192 striped 2 64 "+a+" 0 "+b+" 0")
		d.gdm("load", "x", "--table", "0 8192 linear "+b+" 0")
		run(t, "qemu-io", "-f", "raw", "-c", "write -P 7 0 1M", d.uri("x"))
		if n := len(testkit.OpenUnder(t, d.cmd.Process.Pid, files)); n != 3 {
			t.Fatalf("round %d: daemon has %d backing files open, want 3", i, n)
		}
		d.gdm("remove", "x")
		if open := testkit.OpenUnder(t, d.cmd.Process.Pid, files); len(open) != 0 {
			t.Fatalf("round %d: after remove the daemon still has open: %v", i, open)
		}
	}
}

// kill -9 in the middle of a fio run: fio writes the device at random,
// then keeps rewriting it (time_based), each block with a checksummed
// header; after the daemon restarts on the same state dir, fio reconnects
// and verifies the blocks. Acknowledged writes are in the page cache of the
// backing file, so not one may be lost. The kill comes only after the
// daemon has answered 72 MiB of writes: fio's first pass over the 64 MiB
// is complete, so every block holds an acknowledged write (fio 3.33, given
// its saved verify state, still verifies every block of the job: killed
// within the first pass it reports the blocks it never wrote). The verify
// pass must read back all 64 MiB: a run that wrote or verified less fails.
func TestKill9MidFio(t *testing.T) {
	fio := testkit.NeedTool(t, "fio")
	d := startDaemon(t, "")
	file := testkit.Sparse(t, d.dir, "f.img", 64<<20)
	d.gdm("create", "f", "--table", "0 131072 linear "+file+" 0")
	work := t.TempDir() // fio keeps its verify state file in its cwd
	args := []string{"--name=crash", "--ioengine=nbd", "--uri=" + d.uri("f"), "--rw=randwrite",
		"--bs=4k", "--iodepth=16", "--size=64m", "--verify=crc32c"}
	writer := exec.Command(fio, append(args, "--time_based", "--runtime=60", "--do_verify=0", "--verify_state_save=1")...)
	writer.Dir = work
	var wout bytes.Buffer
	writer.Stdout, writer.Stderr = &wout, &wout
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	// Mid-run: fio has had 72 MiB of writes answered, its first pass done.
	written := `gdm_device_io_bytes_total{device="f",op="write"}`
	testkit.WaitForValue(t, 60*time.Second, "fio writing through the daemon", func() (bool, string) {
		v := metric(t, d, written)
		return v >= 72<<20, fmt.Sprintf("%.0f bytes written", v)
	})
	d.kill9()
	if err := writer.Wait(); err == nil {
		t.Fatalf("fio did not notice the daemon die:\n%s", wout.String())
	}
	if _, err := os.Stat(filepath.Join(work, "local-crash-0-verify.state")); err != nil {
		t.Fatalf("fio saved no verify state: %v\n%s", err, wout.String())
	}
	d.start()
	verify := exec.Command(fio, append(args, "--verify_only", "--verify_state_load=1", "--verify_fatal=1")...)
	verify.Dir = work
	out, err := verify.CombinedOutput()
	if err != nil || strings.Contains(string(out), "bad magic") || strings.Contains(string(out), "verify:") {
		t.Fatalf("acknowledged writes lost across kill -9: %v\n%s", err, out)
	}
	// The verify pass read back the whole device, not nothing.
	if n := fioReadBytes(t, string(out)); n < 64<<20 {
		t.Fatalf("fio verified only %d bytes after kill -9, not the 64 MiB written before it:\n%s", n, out)
	}
}

// fioReadBytes is the io= of fio's READ summary line, in bytes (-1 if
// there is none).
func fioReadBytes(t *testing.T, out string) int64 {
	t.Helper()
	m := regexp.MustCompile(`READ: .*?io=([0-9.]+)([KMGT]?)i?B`).FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m[2]]
	return int64(v * float64(int64(1)<<shift))
}

// devState is what a restart must bring back of one device: whether it
// exists, under which name, its tables and whether it is suspended.
type devState struct {
	exists    bool
	name      string
	live      string
	inactive  string
	suspended bool
}

func (s devState) String() string {
	if !s.exists {
		return "absent"
	}
	return fmt.Sprintf("%s live=%q inactive=%q suspended=%v", s.name, s.live, s.inactive, s.suspended)
}

// verbWorker drives one device through create, load, resume, suspend,
// rename and remove, and keeps what the daemon acknowledged: acked is the
// state after every verb that exited 0; maybe, when the last verb did not
// (the daemon was killed under it), is the state it would have made.
type verbWorker struct {
	base   string // the device's name; base+"-r" after a rename
	file   string // backing file of its tables
	step   int
	acked  devState
	maybe  *devState
	failed []string // verbs that failed while the daemon was up
	acks   int      // verbs acknowledged, over all rounds
	cut    int      // verbs cut short by a kill
}

// next is the worker's next verb and the state it makes from acked.
func (w *verbWorker) next() ([]string, devState) {
	s := w.acked
	w.step++
	table := fmt.Sprintf("0 %d linear %s 0\n", 64+w.step%512, w.file)
	if !s.exists {
		return []string{"create", w.base, "--table", table}, devState{exists: true, name: w.base, live: table}
	}
	switch w.step % 6 {
	case 0:
		s.inactive = table
		return []string{"load", s.name, "--table", table}, s
	case 1, 3:
		if s.inactive != "" {
			s.live, s.inactive = s.inactive, ""
		}
		s.suspended = false
		return []string{"resume", s.name}, s
	case 2:
		s.suspended = true
		return []string{"suspend", s.name}, s
	case 4:
		old := s.name
		s.name = w.base
		if old == w.base {
			s.name = w.base + "-r"
		}
		return []string{"rename", old, s.name}, s
	}
	return []string{"remove", s.name}, devState{}
}

// run does verbs until the daemon is killed.
func (w *verbWorker) run(d *daemon, killed *atomic.Bool) {
	for !killed.Load() {
		args, after := w.next()
		out, err := d.try(args...)
		switch {
		case err == nil:
			w.acked, w.maybe = after, nil
			w.acks++
		case killed.Load():
			w.maybe = &after // it may have happened before the kill
			w.cut++
			return
		default:
			w.failed = append(w.failed, fmt.Sprintf("gdm %s: %v: %s", strings.Join(args, " "), err, out))
			return
		}
	}
}

// observe reads the worker's device back from the daemon.
func (w *verbWorker) observe(t *testing.T, d *daemon) devState {
	t.Helper()
	var found []devState
	for _, name := range []string{w.base, w.base + "-r"} {
		out, err := d.try("info", name, "--json")
		if err != nil {
			if !strings.Contains(out, "no such device") {
				t.Fatalf("gdm info %s: %v: %s", name, err, out)
			}
			continue
		}
		var info struct{ State string }
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatalf("gdm info %s: %v: %s", name, err, out)
		}
		found = append(found, devState{exists: true, name: name, live: d.gdm("table", name),
			inactive: d.gdm("table", name, "--inactive"), suspended: info.State == "SUSPENDED"})
	}
	if len(found) > 1 {
		t.Fatalf("both %s and %s-r exist after a restart", w.base, w.base)
	}
	if len(found) == 0 {
		return devState{}
	}
	return found[0]
}

// The daemon is killed with SIGKILL at a random moment while verbs run on
// several devices, and started again on the same state, in a loop bounded
// by count and time. Each time it starts cleanly (its metrics show no state
// file skipped and no device broken), and every device is as its last acknowledged verb
// left it, or, if a verb was cut short by the kill, as that verb would
// have left it: every acknowledged verb is in the restored state, and no
// verb is half-done.
func TestKill9LoopKeepsAcknowledgedVerbs(t *testing.T) {
	d := startDaemon(t, "")
	file := testkit.Sparse(t, d.dir, "a.img", 1<<20)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	workers := make([]*verbWorker, 3)
	for i := range workers {
		workers[i] = &verbWorker{base: fmt.Sprintf("k%d", i), file: file}
	}
	const rounds, budget = 15, 90 * time.Second
	start, round := time.Now(), 0
	for ; round < rounds && time.Since(start) < budget; round++ {
		var killed atomic.Bool
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Go(func() { w.run(d, &killed) })
		}
		delay := time.Duration(100+rng.IntN(1400)) * time.Millisecond
		proc, exited := d.cmd.Process, d.exited
		time.AfterFunc(delay, func() { killed.Store(true); proc.Kill() })
		wg.Wait()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Fatal("the daemon was not killed")
		}
		d.start()
		if m := scrape(t, d); !strings.Contains(m, "\ngdm_state_files_unreadable 0\n") || regexp.MustCompile(`\ngdm_device_broken\{.*\} 1\n`).MatchString(m) {
			t.Fatalf("round %d: the daemon did not start cleanly after kill -9 (a state file skipped, or a device broken):\n%s", round, m)
		}
		for _, w := range workers {
			if len(w.failed) > 0 {
				t.Fatalf("round %d: a verb failed while the daemon was up: %s", round, w.failed[0])
			}
			got := w.observe(t, d)
			switch {
			case got == w.acked:
			case w.maybe != nil && got == *w.maybe:
			default:
				want := w.acked.String()
				if w.maybe != nil {
					want += "\nor, the cut verb done:\n" + w.maybe.String()
				}
				t.Fatalf("round %d (killed after %v): %s after restart is\n%s\nwant\n%s", round, delay, w.base, got, want)
			}
			w.acked, w.maybe = got, nil
		}
	}
	acks, cut := 0, 0
	for _, w := range workers {
		acks, cut = acks+w.acks, cut+w.cut
	}
	t.Logf("%d rounds in %v: %d verbs acknowledged, %d cut short by the kill", round, time.Since(start).Round(time.Second), acks, cut)
	if round < 3 || acks == 0 {
		t.Fatalf("%d rounds, %d verbs acknowledged: the loop proved nothing", round, acks)
	}
}
