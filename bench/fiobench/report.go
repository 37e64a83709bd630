package main

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The goal of issue 13: gdm's throughput at or above the best peer's, or
// within goalSlack percent of it at goalCPUCut percent less server CPU
// per GiB.
const (
	goalSlack  = 3
	goalCPUCut = 20
)

// isPeer says whether a server is one gdm is measured against.
func isPeer(name string) bool { return !strings.HasPrefix(name, "gdm") }

// targetRows are gdm serving another target than linear over the same
// file: they are compared with gdm's linear row of the same round, not
// with the peers (issue 17: crypt as a ratio to linear).
var targetRows = map[string]bool{"gdm-crypt": true, "gdm-snap": true, "gdm-snap-origin": true, "gdm-snap-rewrite": true}

// report prints the machine, then a Markdown table of each job and
// server's medians with their ratios to the best peer, then, per job,
// whether gdm meets the goal. runs holds one result per round for each
// "job|server"; a zero result is a failed run.
func report(w io.Writer, runs map[string][]result, servers []string, rounds int, perRun time.Duration, tcp bool, loads []float64) {
	machine(w, tcp)
	fmt.Fprintf(w, "Medians of %d rounds, %s per fio run.%s", rounds, perRun, loadNote(loads))
	peers := slices.DeleteFunc(slices.Clone(servers), func(s string) bool { return !isPeer(s) })
	if len(peers) == 0 {
		fmt.Fprint(w, " No peer ran: nothing to compare with.\n\n")
	} else {
		fmt.Fprintf(w, " The vs-best-peer columns are the median of each round's ratio to that round's best peer (of %s, the one with the most IOPS in the round), with the lowest and highest round in brackets.\n\n",
			strings.Join(peers, ", "))
	}
	fmt.Fprintln(w, "| job | server | IOPS | MiB/s | server CPU s/GiB | IOPS vs best peer | CPU/GiB vs best peer |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: |")
	for _, j := range jobs {
		best, _ := bestPeer(runs, j.name, servers, rounds)
		for _, s := range servers {
			rs := runs[j.name+"|"+s]
			r, ok := median(rs)
			if !ok {
				fmt.Fprintf(w, "| %s | %s | failed | | | | |\n", j.name, s)
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %.0f | %.1f | %.2f | %s | %s |\n", j.name, s, r.iops, r.mibs, r.cpuPerGiB,
				span(perRound(rs, best, iops)), span(perRound(rs, best, cpu)))
		}
	}
	goals(w, runs, servers, rounds)
	versusLinear(w, runs, servers)
	snapGoals(w, runs, servers)
}

// versusLinear prints, per job, each target row's IOPS and server CPU per
// GiB as the median of its rounds' ratios to gdm's linear row.
func versusLinear(w io.Writer, runs map[string][]result, servers []string) {
	var rows []string
	for _, s := range servers {
		if targetRows[s] {
			rows = append(rows, s)
		}
	}
	if len(rows) == 0 || !slices.Contains(servers, "gdm") {
		return
	}
	fmt.Fprintf(w, "\nTargets beside linear: each round's ratio to gdm's linear row of the same round (median, lowest and highest round).\n\n")
	fmt.Fprintln(w, "| job | target | IOPS vs linear | CPU/GiB vs linear |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: |")
	for _, j := range jobs {
		linear := runs[j.name+"|gdm"]
		for _, s := range rows {
			rs := runs[j.name+"|"+s]
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", j.name, strings.TrimPrefix(s, "gdm-"),
				span(perRound(rs, linear, iops)), span(perRound(rs, linear, cpu)))
		}
	}
}

func iops(r result) float64 { return r.iops }
func cpu(r result) float64  { return r.cpuPerGiB }

// machine prints what the numbers were measured on, for both transports:
// the congestion control matters only over TCP, where it can matter more
// than the servers (BBR without the fq qdisc paces from timers and
// reorders on loopback; see README).
func machine(w io.Writer, tcp bool) {
	model, cpus := cpuInfo()
	if n := runtime.NumCPU(); n != cpus {
		model += fmt.Sprintf(", %d usable", n)
	}
	fmt.Fprintf(w, "Machine: %s, %d CPUs; kernel %s; TCP congestion control %s.\n",
		model, cpus, sysctl("kernel/osrelease"), sysctl("net/ipv4/tcp_congestion_control"))
	if tcp {
		fmt.Fprint(w, "Transport: loopback TCP.\n\n")
	} else {
		fmt.Fprint(w, "Transport: UNIX sockets.\n\n")
	}
}

// cpuInfo is the first "model name" in /proc/cpuinfo, with its family and
// model numbers (a VM may show only "AMD EPYC"), and the number of
// processors listed there.
func cpuInfo() (model string, cpus int) {
	model = "CPU model unknown"
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return model + " (" + err.Error() + ")", 0
	}
	defer f.Close()
	found := false
	var family, num string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			cpus++
		case "model name":
			if !found {
				model, found = strings.TrimSpace(v), true
			}
		case "cpu family":
			family = cmp.Or(family, strings.TrimSpace(v))
		case "model":
			num = cmp.Or(num, strings.TrimSpace(v))
		}
	}
	if family != "" && num != "" {
		model += fmt.Sprintf(" (family %s, model %s)", family, num)
	}
	return model, cpus
}

// bestPeer is, for each round of a job, the result of the peer with the
// most IOPS in that round (zero if no peer ran), and that peer's name.
func bestPeer(runs map[string][]result, job string, servers []string, rounds int) ([]result, []string) {
	best := make([]result, rounds)
	who := make([]string, rounds)
	for _, s := range servers {
		if !isPeer(s) {
			continue
		}
		for i, r := range runs[job+"|"+s] {
			if i < rounds && r.iops > best[i].iops {
				best[i], who[i] = r, s
			}
		}
	}
	return best, who
}

// perRound compares rs with base round by round, in rounds where both
// ran, as percent changes of f, sorted.
func perRound(rs, base []result, f func(result) float64) []float64 {
	var v []float64
	for i := range min(len(rs), len(base)) {
		if base[i].iops > 0 && rs[i].iops > 0 && f(base[i]) > 0 {
			v = append(v, 100*(f(rs[i])/f(base[i])-1))
		}
	}
	slices.Sort(v)
	return v
}

// span gives the median change and the range of sorted v, as
// "+7% (+5..+12)".
func span(v []float64) string {
	switch len(v) {
	case 0:
		return ""
	case 1:
		return pct(v[0]) + "%"
	}
	return fmt.Sprintf("%s%% (%s..%s)", pct(mid(v)), pct(v[0]), pct(v[len(v)-1]))
}

// meets says whether an IOPS change and a CPU-per-GiB change, in percent
// against the best peer, meet the goal.
func meets(dIOPS, dCPU float64) bool {
	return dIOPS >= 0 || (dIOPS >= -goalSlack && dCPU <= -goalCPUCut)
}

// goals prints, per job, which peer was best in how many rounds and
// whether each gdm variant meets the goal. The verdict is taken on the
// median ratios of the table (unrounded); the rounds in which the goal
// held on their own follow in brackets, a measure of how firm it is.
func goals(w io.Writer, runs map[string][]result, servers []string, rounds int) {
	var gdms []string
	peers := 0
	for _, s := range servers {
		if isPeer(s) {
			peers++
		} else if !targetRows[s] {
			gdms = append(gdms, s)
		}
	}
	if len(gdms) == 0 || peers == 0 {
		return
	}
	fmt.Fprintf(w, "\nGoal: gdm at or above the best peer's IOPS, or within %d%% of it at %d%% less CPU per GiB, judged on the median ratios above (unrounded); in brackets, the rounds in which it held.\n\n",
		goalSlack, goalCPUCut)
	fmt.Fprintf(w, "| job | best peer (rounds) | %s |\n", strings.Join(gdms, " | "))
	fmt.Fprintf(w, "| --- | --- |%s\n", strings.Repeat(" --- |", len(gdms)))
	for _, j := range jobs {
		best, who := bestPeer(runs, j.name, servers, rounds)
		row := []string{j.name, tally(who)}
		for _, g := range gdms {
			row = append(row, verdict(runs[j.name+"|"+g], best))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}

// tally names the best peers and in how many rounds each was best, most
// often first: "nbdkit 2, qemu-nbd 1".
func tally(who []string) string {
	count := map[string]int{}
	var names []string
	for _, s := range who {
		if s == "" {
			continue
		}
		if count[s] == 0 {
			names = append(names, s)
		}
		count[s]++
	}
	if len(names) == 0 {
		return "none ran"
	}
	slices.SortStableFunc(names, func(a, b string) int { return count[b] - count[a] })
	var parts []string
	for _, s := range names {
		parts = append(parts, fmt.Sprintf("%s %d", s, count[s]))
	}
	return strings.Join(parts, ", ")
}

// verdict says whether gdm's runs rs meet the goal against the rounds'
// best peers: "met (2 of 3 rounds)" or "not met (0 of 3 rounds)".
func verdict(rs, best []result) string {
	var dIOPS, dCPU []float64
	held, n := 0, 0
	for i := range min(len(rs), len(best)) {
		if rs[i].iops == 0 || best[i].iops == 0 || best[i].cpuPerGiB == 0 {
			continue
		}
		di := 100 * (rs[i].iops/best[i].iops - 1)
		dc := 100 * (rs[i].cpuPerGiB/best[i].cpuPerGiB - 1)
		dIOPS, dCPU = append(dIOPS, di), append(dCPU, dc)
		n++
		if meets(di, dc) {
			held++
		}
	}
	if n == 0 {
		return "no rounds to compare"
	}
	slices.Sort(dIOPS)
	slices.Sort(dCPU)
	v := "not met"
	if meets(mid(dIOPS), mid(dCPU)) {
		v = "met"
	}
	return fmt.Sprintf("%s (%d of %d rounds)", v, held, n)
}

// sysctl reads a sysctl by its path under /proc/sys, or says it could not.
func sysctl(path string) string {
	b, err := os.ReadFile(filepath.Join("/proc/sys", path))
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(b))
}

// loadNote says how busy the machine was: the 1-minute load average before
// each fio run, lowest to highest. On a shared machine a run at a load
// well above the CPU count (other work compiling) swings rows by several
// times between rounds; the ratios within a round are what to read then.
func loadNote(loads []float64) string {
	if len(loads) == 0 {
		return ""
	}
	lo, hi := slices.Min(loads), slices.Max(loads)
	return fmt.Sprintf(" Load average (1 min) before each fio run: %.1f to %.1f.", lo, hi)
}

// loadAvg is the 1-minute load average, or 0 if it cannot be read.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	return parseLoad(string(b))
}

// parseLoad takes the first field of /proc/loadavg's text.
func parseLoad(s string) float64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
