// Command fiobench serves one tmpfs file from several NBD servers at once
// (gdm, go-nbd's server, nbdkit's file plugin, qemu-nbd), runs the same
// fio jobs against each in turn with --ioengine=nbd, for a few rounds,
// and prints the machine it ran on, the median IOPS, MiB/s and server CPU
// seconds per GiB moved (from /proc/PID/stat), each also as a ratio to the
// round's best peer, and per job whether gdm meets issue 13's goal. Run it
// via bench/run.sh.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
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
