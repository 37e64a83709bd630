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

	"github.com/gdm-project/gdm/internal/loopport"
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
			addr, err := loopport.Free()
			if err != nil {
				log.Fatal(err)
			}
			b.eps[i] = endpoint{"tcp", addr}
		}
	}
}

// proc is a started server; exited is closed once it has ended.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func startProc(cmd *exec.Cmd) (*proc, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd, make(chan struct{})}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// startAll starts every server and, for gdm's, creates the device; stop
// kills them all.
func (b *bench) startAll() (procs []*proc, stop func()) {
	stop = func() {
		for _, p := range procs {
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
	for i, s := range b.servers {
		if b.eps[i].network == "unix" {
			os.Remove(b.eps[i].addr)
		}
		cmd := s.start(b.file, b.eps[i])
		cmd.Stderr = os.Stderr
		p, err := startProc(cmd)
		if err != nil {
			stop()
			log.Fatalf("%s: %v", s.name, err)
		}
		procs = append(procs, p)
		if err := waitListening(b.eps[i], p.exited); err != nil {
			stop()
			log.Fatalf("%s: %v", s.name, err)
		}
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
				r, ok := b.one(j, i, procs[i])
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

// one runs job j against server i (process p), with the server's CPU
// per GiB moved; a failed run is the zero result, and not ok. A server
// that has ended by the run's end fails it: whatever fio measured was
// not that server (another process on its port, say), and its CPU time
// is gone with it.
func (b *bench) one(j job, i int, p *proc) (result, bool) {
	fail := func(err error) (result, bool) {
		log.Printf("%s / %s: %v", b.servers[i].name, j.name, err)
		return result{}, false
	}
	pid := p.cmd.Process.Pid
	cpu0, err := cpuSeconds(pid)
	if err != nil {
		return fail(err)
	}
	bytes, iops, mibs, err := runFio(b.eps[i].uri(), j, b.cfg.size, b.cfg.runtime)
	if err != nil {
		return fail(err)
	}
	cpu1, err := cpuSeconds(pid)
	if err == nil && p.hasExited() {
		err = fmt.Errorf("the server exited during the run")
	}
	if err != nil {
		return fail(err)
	}
	return result{iops, mibs, (cpu1 - cpu0) / (float64(bytes) / (1 << 30))}, true
}

// cpuSeconds is utime+stime of a process, from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	ut, err1 := strconv.ParseFloat(fields[11], 64)
	st, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, fields[11], fields[12])
	}
	return (ut + st) / 100, nil // USER_HZ
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
