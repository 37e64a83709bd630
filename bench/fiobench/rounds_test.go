package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A server that ends before it listens fails the wait at once, saying so,
// rather than after the 20 s a slow server is given.
func TestWaitListeningSeesExit(t *testing.T) {
	p, err := startProc(exec.Command("true"))
	if err != nil {
		t.Fatal(err)
	}
	ep := endpoint{"unix", filepath.Join(t.TempDir(), "never.sock")}
	err = waitListening(ep, p.exited)
	if err == nil || !strings.Contains(err.Error(), "exited before it listened") {
		t.Fatalf("waitListening: %v, want an exit reported", err)
	}
	if !p.hasExited() {
		t.Fatal("hasExited is false after the process ended")
	}
}

// cpuSeconds reads a live process and refuses a gone one, where it once
// returned 0 (and a server gone before its run measured as free).
func TestCPUSecondsOfGoneProcess(t *testing.T) {
	p, err := startProc(exec.Command("true"))
	if err != nil {
		t.Fatal(err)
	}
	<-p.exited
	if _, err := cpuSeconds(p.cmd.Process.Pid); err == nil {
		t.Fatal("cpuSeconds of a reaped process gave no error")
	}
	if _, err := cpuSeconds(1); err != nil {
		t.Fatalf("cpuSeconds(1): %v", err)
	}
}
