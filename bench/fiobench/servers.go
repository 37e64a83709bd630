package main

// The servers a run compares, and how each is started and waited for.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

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

// waitListening waits until ep takes connections, or fails once the
// server has exited (exited closed) or 20 s have gone by.
func waitListening(ep endpoint, exited <-chan struct{}) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial(ep.network, ep.addr); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before it listened on %s", ep.addr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s never came up", ep.addr)
}
