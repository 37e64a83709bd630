// Command fiobench serves one tmpfs file from several NBD servers at once
// (gdm, go-nbd's server, nbdkit's file plugin, qemu-nbd), runs the same
// fio jobs against each in turn with --ioengine=nbd, for a few rounds,
// and prints the machine it ran on, the median IOPS, MiB/s and server CPU
// seconds per GiB moved (from /proc/PID/stat), each also as a ratio to the
// round's best peer, and per job whether gdm meets issue 13's goal. Run it
// via bench/run.sh.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

type job struct {
	name string
	args []string
}

var jobs = []job{
	{"4k randread qd32", []string{"--rw=randread", "--bs=4k", "--iodepth=32"}},
	{"4k randwrite qd32", []string{"--rw=randwrite", "--bs=4k", "--iodepth=32"}},
	{"1M seqread qd8", []string{"--rw=read", "--bs=1m", "--iodepth=8"}},
	{"1M seqwrite qd8", []string{"--rw=write", "--bs=1m", "--iodepth=8"}},
	{"4k randread 2 conns qd32", []string{"--rw=randread", "--bs=4k", "--iodepth=32", "--numjobs=2"}},
}

type server struct {
	name  string
	start func(file string, ep endpoint) *exec.Cmd
	gdm   string // for a gdm daemon: its binary, which creates the bench device
	// table is the bench device's table over file (nil: one linear
	// target); a row with its own table is a target's row, compared with
	// gdm's linear row rather than with the peers (see targetRows).
	table func(size int64, file string) string
	// setup, when set, makes the row's devices in its fresh daemon
	// instead (the snapshot rows, snap.go); a row with setup is a target's
	// row too.
	setup func(b *bench, i int) error
}

// cryptTable is the crypt row's table: aes-xts-plain64 with a fixed
// 512-bit key (what cryptsetup and LUKS2 use by default) over the file.
func cryptTable(size int64, file string) string {
	return fmt.Sprintf("0 %d crypt aes-xts-plain64 %s 0 %s 0", size/512, strings.Repeat("0123456789abcdef", 8), file)
}

// endpoint is where a server listens: a UNIX socket path, or a TCP
// address on loopback.
type endpoint struct {
	network, addr string
}

func (ep endpoint) uri() string {
	if ep.network == "tcp" {
		return "nbd://" + ep.addr + "/bench"
	}
	return "nbd+unix:///bench?socket=" + ep.addr
}

type result struct {
	iops, mibs, cpuPerGiB float64
}

// config is the command line.
type config struct {
	gdm, base, gonbd      string
	size                  int64
	runtime               time.Duration
	dir                   string
	onlyServers, onlyJobs string
	repeat                int
	tcp                   bool
}

func parseFlags() config {
	var c config
	flag.StringVar(&c.gdm, "gdm", "", "gdm binary")
	flag.StringVar(&c.base, "base", "", "another gdm binary (say, main's) to run as gdm-base and gdm-base+metrics, for before and after in one run")
	flag.StringVar(&c.gonbd, "gonbd", "", "gonbd binary")
	flag.Int64Var(&c.size, "size", 1<<30, "bytes in the served file")
	flag.DurationVar(&c.runtime, "runtime", 10*time.Second, "fio runtime per job")
	flag.StringVar(&c.dir, "dir", "/dev/shm", "where the served file lives (tmpfs)")
	flag.StringVar(&c.onlyServers, "servers", "", "comma-separated servers to run: gdm, gdm+metrics, gdm-crypt, gdm-snap, gdm-snap-origin, gdm-snap-rewrite, gdm-base, gdm-base+metrics (with -base), go-nbd, nbdkit, qemu-nbd (default: all)")
	flag.StringVar(&c.onlyJobs, "jobs", "", "run only jobs whose name contains one of these comma-separated strings (default: all)")
	flag.IntVar(&c.repeat, "repeat", 3, "rounds; each row shows the median")
	flag.BoolVar(&c.tcp, "tcp", false, "serve on loopback TCP instead of UNIX sockets")
	flag.Parse()
	return c
}

func main() {
	cfg := parseFlags()
	jobs = filterJobs(jobs, cfg.onlyJobs)
	work, err := os.MkdirTemp(cfg.dir, "gdm-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	file := filepath.Join(work, "disk.img")
	// A fully allocated file, so reads are real copies, not holes.
	if out, err := exec.Command("fio", "--name=fill", "--filename="+file, "--rw=write", "--bs=1m",
		fmt.Sprintf("--size=%d", cfg.size), "--ioengine=psync").CombinedOutput(); err != nil {
		log.Fatalf("filling %s: %v\n%s", file, err, out)
	}
	servers := filterServers(benchServers(cfg, work), cfg.onlyServers)
	if len(jobs) == 0 || len(servers) == 0 {
		log.Fatal("no job or no server left to run")
	}
	b := &bench{cfg: cfg, servers: servers, work: work, file: file}
	b.endpoints()
	runs, loads := b.rounds()
	report(os.Stdout, runs, names(servers), cfg.repeat, cfg.runtime, cfg.tcp, loads)
}

// filterJobs keeps the jobs whose name contains one of the comma-separated
// parts of only (all of them when only is empty).
func filterJobs(all []job, only string) []job {
	if only == "" {
		return all
	}
	var kept []job
	for _, j := range all {
		for _, part := range strings.Split(only, ",") {
			if strings.Contains(j.name, part) {
				kept = append(kept, j)
				break
			}
		}
	}
	return kept
}

// benchServers are the servers compared, gdm's first.
func benchServers(cfg config, work string) []server {
	servers := []server{
		{name: "gdm", start: gdmServer(cfg.gdm, work, "gdm", ""), gdm: cfg.gdm},
		{name: "gdm+metrics", start: gdmServer(cfg.gdm, work, "gdm+metrics", "127.0.0.1:0"), gdm: cfg.gdm},
		{name: "gdm-crypt", start: gdmServer(cfg.gdm, work, "gdm-crypt", ""), gdm: cfg.gdm, table: cryptTable},
		{name: "go-nbd", start: func(file string, ep endpoint) *exec.Cmd {
			if ep.network == "tcp" {
				return exec.Command(cfg.gonbd, "-file", file, "-listen", ep.addr)
			}
			return exec.Command(cfg.gonbd, "-file", file, "-socket", ep.addr)
		}},
		{name: "nbdkit", start: func(file string, ep endpoint) *exec.Cmd {
			if ep.network == "tcp" {
				host, port, _ := net.SplitHostPort(ep.addr)
				return exec.Command("nbdkit", "-f", "-i", host, "-p", port, "--exportname=bench", "file", file)
			}
			return exec.Command("nbdkit", "-f", "-U", ep.addr, "--exportname=bench", "file", file)
		}},
		{name: "qemu-nbd", start: qemuNBD},
	}
	servers = slices.Insert(servers, 3, snapServers(cfg.gdm, work)...)
	if cfg.base != "" {
		servers = slices.Insert(servers, 2,
			server{name: "gdm-base", start: gdmServer(cfg.base, work, "gdm-base", ""), gdm: cfg.base},
			server{name: "gdm-base+metrics", start: gdmServer(cfg.base, work, "gdm-base+metrics", "127.0.0.1:0"), gdm: cfg.base})
	}
	return servers
}

// filterServers keeps the servers named in the comma-separated only (all
// of them when only is empty).
func filterServers(all []server, only string) []server {
	if only == "" {
		return all
	}
	var kept []server
	for _, s := range all {
		if strings.Contains(","+only+",", ","+s.name+",") {
			kept = append(kept, s)
		}
	}
	return kept
}

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

func names(servers []server) []string {
	var ns []string
	for _, s := range servers {
		ns = append(ns, s.name)
	}
	return ns
}

// pct prints a signed whole percentage, never "-0".
func pct(x float64) string {
	return fmt.Sprintf("%+d", int(math.Round(x)))
}

// mid is the median of sorted v.
func mid(v []float64) float64 {
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// median takes each column's median over the rounds (a failed round is
// left out); false if every round failed.
func median(all []result) (result, bool) {
	var rs []result
	for _, r := range all {
		if r.iops > 0 {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return result{}, false
	}
	col := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return mid(v)
	}
	return result{
		iops:      col(func(r result) float64 { return r.iops }),
		mibs:      col(func(r result) float64 { return r.mibs }),
		cpuPerGiB: col(func(r result) float64 { return r.cpuPerGiB }),
	}, true
}

// gdmControl is the control socket of the gdm daemon named name.
func gdmControl(work, name string) string {
	return filepath.Join(work, name+"-control.sock")
}

// gdmServer starts gdm serve with metrics off (metrics == "") or on (its
// latency histograms then time every request).
func gdmServer(gdm, work, name, metrics string) func(file string, ep endpoint) *exec.Cmd {
	return func(file string, ep endpoint) *exec.Cmd {
		sock, listen := ep.addr, ""
		if ep.network == "tcp" {
			sock, listen = "", ep.addr
		}
		state := filepath.Join(work, name+"-state")
		os.RemoveAll(state) // a fresh daemon: the bench device is created anew
		return exec.Command(gdm, "serve", "--state-dir", state, "--control", gdmControl(work, name),
			"--nbd-socket", sock, "--nbd-listen", listen, "--metrics-listen", metrics, "--log-level", "warn")
	}
}

// qemuNBD serves file with qemu-nbd, set up like nbdkit's file plugin:
// the page cache in between (--cache=writeback, qemu's default, flushes
// only on NBD_CMD_FLUSH; none would be O_DIRECT, which tmpfs refuses),
// pread/pwrite from a thread pool (--aio=threads, nbdkit's file plugin
// also uses plain pread/pwrite from its threads), trims passed on to the
// file as nbdkit does. -t keeps it up after its first client leaves and
// -e 8 lets more than one client in (the 2-connection job), as the other
// servers do by default.
//
// Measured on the 2-core VM: for 1 MiB requests qemu-nbd runs at about a
// tenth of the others' speed, its CPU in page faults on fresh request
// buffers (glibc hands each 1 MiB buffer out by mmap and takes it back by
// munmap; faults are dear in this VM). With GLIBC_TUNABLES=
// glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=268435456
// it was ten times faster; it runs here as users run it, untuned. Its 4
// KiB rows do not change with the tunables.
func qemuNBD(file string, ep endpoint) *exec.Cmd {
	args := []string{"-t", "-e", "8", "-f", "raw", "--cache=writeback", "--aio=threads", "--discard=unmap", "-x", "bench"}
	if ep.network == "tcp" {
		host, port, _ := net.SplitHostPort(ep.addr)
		args = append(args, "-b", host, "-p", port)
	} else {
		args = append(args, "-k", ep.addr)
	}
	return exec.Command("qemu-nbd", append(args, file)...)
}

// freePort is a loopback TCP address no one listens on now.
func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListening(ep endpoint) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial(ep.network, ep.addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	log.Fatalf("%s never came up", ep.addr)
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
