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

func main() {
	gdm := flag.String("gdm", "", "gdm binary")
	base := flag.String("base", "", "another gdm binary (say, main's) to run as gdm-base and gdm-base+metrics, for before and after in one run")
	gonbd := flag.String("gonbd", "", "gonbd binary")
	size := flag.Int64("size", 1<<30, "bytes in the served file")
	runtime := flag.Duration("runtime", 10*time.Second, "fio runtime per job")
	dir := flag.String("dir", "/dev/shm", "where the served file lives (tmpfs)")
	onlyServers := flag.String("servers", "", "comma-separated servers to run: gdm, gdm+metrics, gdm-base, gdm-base+metrics (with -base), go-nbd, nbdkit, qemu-nbd (default: all)")
	onlyJobs := flag.String("jobs", "", "run only jobs whose name contains one of these comma-separated strings (default: all)")
	repeat := flag.Int("repeat", 3, "rounds; each row shows the median")
	tcp := flag.Bool("tcp", false, "serve on loopback TCP instead of UNIX sockets")
	flag.Parse()
	if *onlyJobs != "" {
		var kept []job
		for _, j := range jobs {
			for _, part := range strings.Split(*onlyJobs, ",") {
				if strings.Contains(j.name, part) {
					kept = append(kept, j)
					break
				}
			}
		}
		jobs = kept
	}

	work, err := os.MkdirTemp(*dir, "gdm-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	file := filepath.Join(work, "disk.img")
	// A fully allocated file, so reads are real copies, not holes.
	if out, err := exec.Command("fio", "--name=fill", "--filename="+file, "--rw=write", "--bs=1m",
		fmt.Sprintf("--size=%d", *size), "--ioengine=psync").CombinedOutput(); err != nil {
		log.Fatalf("filling %s: %v\n%s", file, err, out)
	}

	servers := []server{
		{"gdm", gdmServer(*gdm, work, "gdm", ""), *gdm},
		{"gdm+metrics", gdmServer(*gdm, work, "gdm+metrics", "127.0.0.1:0"), *gdm},
		{"go-nbd", func(file string, ep endpoint) *exec.Cmd {
			if ep.network == "tcp" {
				return exec.Command(*gonbd, "-file", file, "-listen", ep.addr)
			}
			return exec.Command(*gonbd, "-file", file, "-socket", ep.addr)
		}, ""},
		{"nbdkit", func(file string, ep endpoint) *exec.Cmd {
			if ep.network == "tcp" {
				host, port, _ := net.SplitHostPort(ep.addr)
				return exec.Command("nbdkit", "-f", "-i", host, "-p", port, "--exportname=bench", "file", file)
			}
			return exec.Command("nbdkit", "-f", "-U", ep.addr, "--exportname=bench", "file", file)
		}, ""},
		{"qemu-nbd", qemuNBD, ""},
	}
	if *base != "" {
		servers = slices.Insert(servers, 2,
			server{"gdm-base", gdmServer(*base, work, "gdm-base", ""), *base},
			server{"gdm-base+metrics", gdmServer(*base, work, "gdm-base+metrics", "127.0.0.1:0"), *base})
	}
	if *onlyServers != "" {
		var kept []server
		for _, s := range servers {
			if strings.Contains(","+*onlyServers+",", ","+s.name+",") {
				kept = append(kept, s)
			}
		}
		servers = kept
	}
	if len(jobs) == 0 || len(servers) == 0 {
		log.Fatal("no job or no server left to run")
	}
	// Each round starts every server afresh, runs every job against every
	// server back to back, the servers' order rotating from round to round,
	// and stops them. A row then compares runs seconds apart, not a whole
	// benchmark apart, and the median of the rounds drops the odd run (or
	// server process) a noisy neighbour spoiled.
	eps := make([]endpoint, len(servers))
	for i, s := range servers {
		eps[i] = endpoint{"unix", filepath.Join(work, s.name+".sock")}
		if *tcp {
			eps[i] = endpoint{"tcp", freePort()}
		}
	}
	startAll := func() (procs []*exec.Cmd, stop func()) {
		stop = func() {
			for _, p := range procs {
				p.Process.Kill()
				p.Wait()
			}
		}
		for i, s := range servers {
			if eps[i].network == "unix" {
				os.Remove(eps[i].addr)
			}
			p := s.start(file, eps[i])
			p.Stderr = os.Stderr
			if err := p.Start(); err != nil {
				stop()
				log.Fatalf("%s: %v", s.name, err)
			}
			procs = append(procs, p)
			waitListening(eps[i])
			if s.gdm != "" {
				ctl := exec.Command(s.gdm, "create", "bench", "--control", gdmControl(work, s.name),
					"--table", fmt.Sprintf("0 %d linear %s 0", *size/512, file))
				if out, err := ctl.CombinedOutput(); err != nil {
					stop()
					log.Fatalf("gdm create: %v %s", err, out)
				}
			}
		}
		return procs, stop
	}
	runs := map[string][]result{} // by job and server, one per round
	var loads []float64           // the load average before each fio run
	for round := range *repeat {
		procs, stop := startAll()
		for _, j := range jobs {
			for k := range servers {
				i := (k + round) % len(servers)
				s := servers[i]
				pid := procs[i].Process.Pid
				loads = append(loads, loadAvg())
				cpu0 := cpuSeconds(pid)
				bytes, iops, mibs, err := runFio(eps[i].uri(), j, *size, *runtime)
				cpu := cpuSeconds(pid) - cpu0
				if err != nil {
					log.Printf("%s / %s: %v", s.name, j.name, err)
					// A zero result marks the failed round, which
					// keeps rounds aligned across servers.
					runs[j.name+"|"+s.name] = append(runs[j.name+"|"+s.name], result{})
					continue
				}
				r := result{iops, mibs, cpu / (float64(bytes) / (1 << 30))}
				runs[j.name+"|"+s.name] = append(runs[j.name+"|"+s.name], r)
				fmt.Fprintf(os.Stderr, "round %d %-16s %-24s %9.0f IOPS %8.1f MiB/s %6.2f CPU s/GiB\n",
					round+1, s.name, j.name, r.iops, r.mibs, r.cpuPerGiB)
			}
		}
		stop()
	}
	report(os.Stdout, runs, names(servers), *repeat, *runtime, *tcp, loads)
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
