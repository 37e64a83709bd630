// Command oracleguest runs the oracle's cases inside the qemu guest that
// e2e/oracle_test.go boots: the kernel's dm (dmsetup over virtio disks
// with serials dm0, dm1, ...) against gdm (its daemon over disks gdm0,
// gdm1, ..., attached with the kernel's nbd-client). It prints one
// "ORACLE-CASE {json}" line per case and "ORACLE-DONE" at the end.
//
// Both sides run in the guest, driven by this one program, rather than gdm
// on the host behind qemu's guestfwd: the program then reaches both
// devices through the same block-layer calls, compares each operation as
// it happens with both sides' bytes at hand, fills and compares the
// backing disks between cases without any host round trip, and one boot
// runs every case.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gdm-project/gdm/internal/oracle"
)

func main() {
	gdmBin := flag.String("gdm", "/bin/gdm", "the gdm binary")
	seed := flag.Uint64("seed", 1, "seed of the (first) generated case")
	generated := flag.Int("generated", 1, "how many generated cases to run, the first from -seed")
	only := flag.String("only", "", "run only the cases matching this regexp")
	self := flag.Bool("self", false, "compare dm with dm (over the gdm disks) instead of gdm: the cases' own determinism")
	from := flag.String("from", "", "skip the cases before the one of this name (a fresh guest's re-run after the kernel's dm hung in one)")
	watchAfter := flag.Duration("watch", 4*time.Minute, "how long a case may run before the watch prints what it waits on")
	hangDM := flag.Bool("hang-dm", false, "suspend dm's device before the first case's first I/O, so that it hangs: how a test sees a hang on dm's side handled")
	flag.Parse()
	caseWatch = *watchAfter
	cases := oracle.Cases()
	for _, s := range oracle.GeneratedSeeds(*seed, *generated) {
		cases = append(cases, oracle.Generated(s))
	}
	if *from != "" {
		i := slices.IndexFunc(cases, func(c oracle.Case) bool { return c.Name == *from })
		if i < 0 {
			fmt.Println("ORACLE-ERROR -from: no case", *from)
			os.Exit(1)
		}
		cases = cases[i:]
	}
	if err := runAll(*gdmBin, cases, *only, *self, *hangDM); err != nil {
		fmt.Println("ORACLE-ERROR", err)
		os.Exit(1)
	}
	fmt.Println("ORACLE-DONE")
}

func runAll(gdmBin string, cases []oracle.Case, only string, self, hangDM bool) error {
	match, err := regexp.Compile(only)
	if err != nil {
		return err
	}
	dmDisks, gdmDisks, err := disksBySerial()
	if err != nil {
		return err
	}
	if err := writeBack(append(dmDisks, gdmDisks...)); err != nil {
		return err
	}
	dm, err := oracle.NewDM(dmDisks)
	if err != nil {
		return err
	}
	b, stop, err := sideB(gdmBin, gdmDisks, self)
	if err != nil {
		return err
	}
	defer stop()
	rn := &oracle.Runner{A: dm, B: b, Direct: true, DiskSize: oracle.DiskBytes}
	if hangDM {
		var once sync.Once
		rn.BeforeDMIO = func(dev string) {
			once.Do(func() {
				out, err := exec.Command("dmsetup", "suspend", dev).CombinedOutput()
				fmt.Printf("hang-dm: suspended dm's %s (err %v) %s\n", dev, err, out)
			})
		}
	}
	for _, c := range cases {
		if match.MatchString(c.Name) {
			start := time.Now()
			stop := watch(rn, b, c.Name)
			emit(rn.Run(c), start)
			stop()
		}
	}
	for i, a := range oracle.Acceptance() {
		if match.MatchString(a.Label()) {
			start := time.Now()
			emit(rn.RunAccept(i, a), start)
		}
	}
	if match.MatchString("targets") {
		emit(rn.RunTargets(), time.Now())
	}
	if match.MatchString("events") {
		emit(rn.RunEvents(), time.Now())
	}
	return nil
}

// caseWatch bounds one case before the watch prints what it waits on (a
// case takes seconds to a minute under TCG; the test's boot guard, 15
// minutes, would kill the guest with nothing said). -watch sets it.
var caseWatch = 4 * time.Minute

// dmHung is the line the watch prints when the op in flight is dm's, the
// kernel's: gdm then has none outstanding (the sides take each op in
// turn) and a dm I/O stuck in D state cannot be cancelled, nor its device
// removed, in this guest. The host stops the guest on this line and runs
// the cases from this one on in a fresh guest (e2e/oracle_test.go).
const dmHung = "ORACLE-DM-HUNG"

// watch prints what a case still running after caseWatch waits on; stop
// disarms it. A hang on gdm's side then dumps gdm's goroutines (and ends
// it); one on dm's side prints dmHung and leaves the guest to the host.
func watch(rn *oracle.Runner, b oracle.Side, name string) (stop func()) {
	g, ok := b.(*oracle.GDM)
	if !ok {
		return func() {}
	}
	t := time.AfterFunc(caseWatch, func() {
		side := rn.InFlight()
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		fmt.Printf("ORACLE-WATCH %s still running after %v (I/O in flight on side %d; 0 is dm, 1 gdm, -1 neither): the guest program's goroutines:\n%s\n",
			name, caseWatch, side, buf)
		blocked()
		dmStates()
		kernelLog()
		if side == 0 {
			fmt.Printf("%s %s\n", dmHung, name)
			return
		}
		fmt.Printf("ORACLE-WATCH gdm's goroutines follow\n")
		g.Dump()
	})
	return func() { t.Stop() }
}

// blocked prints the kernel stacks of the guest's threads that wait
// uninterruptibly (D state): a hang below gdm (the block layer, dm, a
// virtio disk) shows there. Threads, not processes: a Go program's
// blocking read runs on whichever of its threads took the goroutine, not
// always the thread group's leader that /proc/N names. It also prints the
// requests each block device has in flight (reads, writes), which says
// which device holds a lost request.
func blocked() {
	tasks, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*")
	for _, p := range tasks {
		st, err := os.ReadFile(p + "/stat")
		if err != nil || !strings.Contains(string(st), ") D ") {
			continue
		}
		stack, _ := os.ReadFile(p + "/stack")
		fmt.Printf("ORACLE-WATCH D task %s\n%s\n", st, stack)
	}
	inflight, _ := filepath.Glob("/sys/block/*/inflight")
	for _, p := range inflight {
		b, err := os.ReadFile(p)
		if n := strings.Join(strings.Fields(string(b)), " "); err == nil && n != "" && n != "0 0" {
			fmt.Printf("ORACLE-WATCH in flight on %s (reads writes): %s\n", filepath.Base(filepath.Dir(p)), n)
		}
	}
}

// dmStates prints dm's devices and their state (a suspended device holds
// its I/O, which then waits in D state forever).
func dmStates() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "dmsetup", "info", "-c", "--noheadings", "-o", "name,attr,open").CombinedOutput()
	fmt.Printf("ORACLE-WATCH dm devices (name:attr:open; attr s is suspended), err %v:\n%s\n", err, out)
}

// kernelLog prints the end of the kernel's log: hung-task reports, I/O
// errors and dm's own complaints (the console shows none: the guest
// script sets its level to 1).
func kernelLog() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "dmesg").CombinedOutput()
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	lines = lines[max(0, len(lines)-60):]
	fmt.Printf("ORACLE-WATCH the kernel log's end, err %v:\n%s\n", err, strings.Join(lines, "\n"))
}

// sideB is gdm over disks, or with self a second dm ("dm2") over them.
func sideB(gdmBin string, disks []string, self bool) (oracle.Side, func(), error) {
	if self {
		d, err := oracle.NewDM(disks)
		if err != nil {
			return nil, nil, err
		}
		return d.Named("dm2"), func() {}, nil
	}
	g, err := oracle.StartGDM(gdmBin, "/tmp/gdm", disks)
	if err != nil {
		return nil, nil, err
	}
	return g, g.Stop, nil
}

func emit(r *oracle.Report, start time.Time) {
	b, _ := json.Marshal(r.Line(time.Since(start).Seconds()))
	fmt.Printf("ORACLE-CASE %s\n", b)
}

// writeBack checks that every disk has a volatile write cache: without
// one the block layer drops flushes before dm sees them, and the
// log-writes cases would compare logs without flush entries.
func writeBack(disks []string) error {
	for _, d := range disks {
		p := filepath.Join("/sys/block", filepath.Base(d), "queue/write_cache")
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(string(b)); got != "write back" {
			return fmt.Errorf("%s is %q, want \"write back\" (qemu: a drive cache mode with writeback)", p, got)
		}
	}
	return nil
}

// disksBySerial finds the virtio disks the host named dmN and gdmN (by
// serial, not by probe order), each list in N order, followed by those it
// named dm4kN and gdm4kN (its disks of 4 KiB logical blocks, which cases
// pick by their block size).
func disksBySerial() (dm, gdm []string, err error) {
	paths, _ := filepath.Glob("/sys/block/vd*/serial")
	bySerial := map[string]string{}
	for _, p := range paths {
		s, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		bySerial[strings.TrimSpace(string(s))] = "/dev/" + filepath.Base(filepath.Dir(p))
	}
	dm, gdm = pairs(bySerial, "dm%d", "gdm%d")
	if len(dm) == 0 {
		var serials []string
		for s := range bySerial {
			serials = append(serials, s)
		}
		sort.Strings(serials)
		return nil, nil, fmt.Errorf("no disks with serials dm0 and gdm0 (found %v)", serials)
	}
	dm4k, gdm4k := pairs(bySerial, "dm4k%d", "gdm4k%d")
	return append(dm, dm4k...), append(gdm, gdm4k...), nil
}

// pairs are the disks whose serials are formatA and formatB of 0, 1, ...,
// up to the first N that either lacks.
func pairs(bySerial map[string]string, formatA, formatB string) (a, b []string) {
	for i := 0; ; i++ {
		pa, okA := bySerial[fmt.Sprintf(formatA, i)]
		pb, okB := bySerial[fmt.Sprintf(formatB, i)]
		if !okA || !okB {
			return a, b
		}
		a, b = append(a, pa), append(b, pb)
	}
}
