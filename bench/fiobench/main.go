// Command fiobench serves one tmpfs file from several NBD servers in turn
// (gdm, go-nbd's server, nbdkit's file plugin), runs the same fio jobs
// against each with --ioengine=nbd, and prints IOPS, MiB/s and each server's
// CPU seconds per GiB moved (from /proc/PID/stat). Run it via bench/run.sh.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
	start func(file, sock string) *exec.Cmd
	uri   func(sock string) string
}

type result struct {
	iops, mibs, cpuPerGiB float64
}

func main() {
	gdm := flag.String("gdm", "", "gdm binary")
	gonbd := flag.String("gonbd", "", "gonbd binary")
	size := flag.Int64("size", 1<<30, "bytes in the served file")
	runtime := flag.Duration("runtime", 10*time.Second, "fio runtime per job")
	dir := flag.String("dir", "/dev/shm", "where the served file lives (tmpfs)")
	onlyServers := flag.String("servers", "", "comma-separated servers to run (default: all)")
	onlyJobs := flag.String("jobs", "", "run only jobs whose name contains this (default: all)")
	flag.Parse()
	if *onlyJobs != "" {
		var kept []job
		for _, j := range jobs {
			if strings.Contains(j.name, *onlyJobs) {
				kept = append(kept, j)
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
		{"gdm", gdmServer(*gdm, work, ""), func(sock string) string { return "nbd+unix:///bench?socket=" + sock }},
		{"gdm+metrics", gdmServer(*gdm, work, "127.0.0.1:0"), func(sock string) string { return "nbd+unix:///bench?socket=" + sock }},
		{"go-nbd", func(file, sock string) *exec.Cmd {
			return exec.Command(*gonbd, "-file", file, "-socket", sock)
		}, func(sock string) string { return "nbd+unix:///bench?socket=" + sock }},
		{"nbdkit", func(file, sock string) *exec.Cmd {
			return exec.Command("nbdkit", "-f", "-U", sock, "--exportname=bench", "file", file)
		}, func(sock string) string { return "nbd+unix:///bench?socket=" + sock }},
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
	results := map[string]map[string]result{}
	for _, s := range servers {
		sock := filepath.Join(work, s.name+".sock")
		cmd := s.start(file, sock)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			log.Fatalf("%s: %v", s.name, err)
		}
		waitSocket(sock)
		if strings.HasPrefix(s.name, "gdm") {
			ctl := exec.Command(*gdm, "create", "bench", "--control", filepath.Join(work, "gdm-control.sock"),
				"--table", fmt.Sprintf("0 %d linear %s 0", *size/512, file))
			if out, err := ctl.CombinedOutput(); err != nil {
				log.Fatalf("gdm create: %v %s", err, out)
			}
		}
		results[s.name] = map[string]result{}
		for _, j := range jobs {
			cpu0 := cpuSeconds(cmd.Process.Pid)
			bytes, iops, mibs, err := runFio(s.uri(sock), j, *size, *runtime)
			cpu := cpuSeconds(cmd.Process.Pid) - cpu0
			if err != nil {
				log.Printf("%s / %s: %v", s.name, j.name, err)
				continue
			}
			results[s.name][j.name] = result{iops, mibs, cpu / (float64(bytes) / (1 << 30))}
			fmt.Fprintf(os.Stderr, "%-8s %-26s %10.0f IOPS %9.1f MiB/s %7.2f CPU s/GiB\n", s.name, j.name, iops, mibs, results[s.name][j.name].cpuPerGiB)
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	fmt.Println("| job | server | IOPS | MiB/s | server CPU s/GiB |")
	fmt.Println("| --- | --- | ---: | ---: | ---: |")
	for _, j := range jobs {
		for _, s := range servers {
			r, ok := results[s.name][j.name]
			if !ok {
				fmt.Printf("| %s | %s | failed | | |\n", j.name, s.name)
				continue
			}
			fmt.Printf("| %s | %s | %.0f | %.1f | %.2f |\n", j.name, s.name, r.iops, r.mibs, r.cpuPerGiB)
		}
	}
}

// gdmServer starts gdm serve with metrics off (metrics == "") or on (its
// latency histograms then time every request).
func gdmServer(gdm, work, metrics string) func(file, sock string) *exec.Cmd {
	return func(file, sock string) *exec.Cmd {
		state := filepath.Join(work, "gdm-state")
		os.RemoveAll(state)
		return exec.Command(gdm, "serve", "--state-dir", state, "--control", filepath.Join(work, "gdm-control.sock"),
			"--nbd-socket", sock, "--nbd-listen", "", "--metrics-listen", metrics, "--log-level", "warn")
	}
}

func waitSocket(sock string) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	log.Fatalf("%s never came up", sock)
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
