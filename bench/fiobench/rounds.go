package main

// A run: every server started, the jobs run against each in rounds, and
// each server's CPU time read around every job.

import (
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// bench is one run: the servers, where each listens, and the served file.
//
// Each round starts every server afresh, runs every job against every
// server back to back, the servers' order rotating from round to round,
// and stops them. A row then compares runs seconds apart, not a whole
// benchmark apart, and the median of the rounds drops the odd run (or
// server process) a noisy neighbour spoiled.
type bench struct {
	cfg        config
	servers    []server
	eps        []endpoint
	work, file string
}

// endpoints gives each server its socket path or loopback port.
func (b *bench) endpoints() {
	b.eps = make([]endpoint, len(b.servers))
	for i, s := range b.servers {
		b.eps[i] = endpoint{"unix", filepath.Join(b.work, s.name+".sock")}
		if b.cfg.tcp {
			b.eps[i] = endpoint{"tcp", freePort()}
		}
	}
}

// startAll starts every server and, for gdm's, creates the device; stop
// kills them all.
func (b *bench) startAll() (procs []*exec.Cmd, stop func()) {
	stop = func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}
	for i, s := range b.servers {
		if b.eps[i].network == "unix" {
			os.Remove(b.eps[i].addr)
		}
		p := s.start(b.file, b.eps[i])
		p.Stderr = os.Stderr
		if err := p.Start(); err != nil {
			stop()
			log.Fatalf("%s: %v", s.name, err)
		}
		procs = append(procs, p)
		waitListening(b.eps[i])
		if s.setup != nil {
			if err := s.setup(b, i); err != nil {
				stop()
				log.Fatalf("%s: %v", s.name, err)
			}
		} else if s.gdm != "" {
			table := fmt.Sprintf("0 %d linear %s 0", b.cfg.size/512, b.file)
			if s.table != nil {
				table = s.table(b.cfg.size, b.file)
			}
			ctl := exec.Command(s.gdm, "create", "bench", "--control", gdmControl(b.work, s.name), "--table", table)
			if out, err := ctl.CombinedOutput(); err != nil {
				stop()
				log.Fatalf("gdm create: %v %s", err, out)
			}
		}
	}
	return procs, stop
}

// rounds runs every round and returns the results by job and server (one
// per round) and the load average before each fio run.
func (b *bench) rounds() (runs map[string][]result, loads []float64) {
	runs = map[string][]result{}
	for round := range b.cfg.repeat {
		procs, stop := b.startAll()
		for _, j := range jobs {
			for k := range b.servers {
				i := (k + round) % len(b.servers)
				loads = append(loads, loadAvg())
				r, ok := b.one(j, i, procs[i].Process.Pid)
				key := j.name + "|" + b.servers[i].name
				// A zero result marks a failed run, which keeps rounds
				// aligned across servers.
				runs[key] = append(runs[key], r)
				if ok {
					fmt.Fprintf(os.Stderr, "round %d %-16s %-24s %9.0f IOPS %8.1f MiB/s %6.2f CPU s/GiB\n",
						round+1, b.servers[i].name, j.name, r.iops, r.mibs, r.cpuPerGiB)
				}
			}
		}
		stop()
	}
	return runs, loads
}

// one runs job j against server i (process pid), with the server's CPU
// per GiB moved; a failed run is the zero result, and not ok.
func (b *bench) one(j job, i, pid int) (result, bool) {
	cpu0 := cpuSeconds(pid)
	bytes, iops, mibs, err := runFio(b.eps[i].uri(), j, b.cfg.size, b.cfg.runtime)
	cpu := cpuSeconds(pid) - cpu0
	if err != nil {
		log.Printf("%s / %s: %v", b.servers[i].name, j.name, err)
		return result{}, false
	}
	return result{iops, mibs, cpu / (float64(bytes) / (1 << 30))}, true
}

// cpuSeconds is utime+stime of a process, from /proc/PID/stat.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func runFio(uri string, j job, size int64, runtime time.Duration) (bytes int64, iops, mibs float64, err error) {
	args := append([]string{"--name=bench", "--ioengine=nbd", "--uri=" + uri, fmt.Sprintf("--size=%d", size),
		"--time_based", fmt.Sprintf("--runtime=%ds", int(runtime.Seconds())), "--group_reporting", "--output-format=json"}, j.args...)
	out, err := exec.Command("fio", args...).Output()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("fio: %v\n%s", err, out)
	}
	var res struct {
		Jobs []struct {
			Error int `json:"error"`
			Read  struct {
				Bytes int64   `json:"io_bytes"`
				IOPS  float64 `json:"iops"`
				BW    float64 `json:"bw_bytes"`
			} `json:"read"`
			Write struct {
				Bytes int64   `json:"io_bytes"`
				IOPS  float64 `json:"iops"`
				BW    float64 `json:"bw_bytes"`
			} `json:"write"`
		} `json:"jobs"`
	}
	if i := strings.IndexByte(string(out), '{'); i >= 0 {
		out = out[i:]
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, 0, 0, err
	}
	if len(res.Jobs) == 0 || res.Jobs[0].Error != 0 {
		return 0, 0, 0, fmt.Errorf("fio job error")
	}
	r := res.Jobs[0]
	return r.Read.Bytes + r.Write.Bytes, r.Read.IOPS + r.Write.IOPS, (r.Read.BW + r.Write.BW) / (1 << 20), nil
}
