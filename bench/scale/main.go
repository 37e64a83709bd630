// Command scale measures the gdm daemon at scale, on the real binary: a
// table of a million linear targets (create time, the daemon's RSS growth,
// verb latency with it present) and thousands of small devices (create,
// ls, a /metrics scrape, restart with all restored, SIGTERM). It prints
// the machine first. Usage:
//
//	go build -o /tmp/gdm ./cmd/gdm && go run ./bench/scale -gdm /tmp/gdm
//	go run ./bench/scale -gdm /tmp/gdm -targets 0 -devices 1000,5000,10000
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

func main() {
	bin := flag.String("gdm", "", "the gdm binary to measure (required)")
	targets := flag.Int("targets", 1_000_000, "linear targets of the big table (0: skip)")
	devices := flag.String("devices", "10000", "comma-separated device counts to measure (empty: skip)")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "scale: -gdm BINARY is required")
		os.Exit(2)
	}
	printMachine()
	if *targets > 0 {
		if err := bigTable(*bin, *targets); err != nil {
			fmt.Fprintln(os.Stderr, "scale: big table:", err)
			os.Exit(1)
		}
	}
	for _, s := range strings.Split(*devices, ",") {
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err == nil {
			err = manyDevices(*bin, n)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "scale: devices:", err)
			os.Exit(1)
		}
	}
}

// printMachine prints the CPU, its count and the kernel.
func printMachine() {
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Printf("machine: %s, %d CPUs, Linux %s, %s\n", cpu, runtime.NumCPU(), strings.TrimSpace(string(kernel)), runtime.Version())
}
