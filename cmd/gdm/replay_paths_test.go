package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// replay's LOG and DEV must be a file or block device, opened without
// waiting: a FIFO (or a socket) named by mistake once blocked the verb
// in open(2) forever, waiting for a peer. DEV may not be LOG itself,
// which the replay would overwrite while reading it.
func TestReplayRefusesOddPaths(t *testing.T) {
	dir := t.TempDir()
	dev, log := writeLog(t, dir)
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // frees an open(2) stuck on the FIFO, if one is
		if f, err := os.OpenFile(fifo, os.O_RDWR|unix.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	logLink := filepath.Join(dir, "log-link")
	if err := os.Symlink(log, logLink); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(log)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", log, fifo}, "not a file or block device"},
		{[]string{"replay", fifo, dev}, "not a file or block device"},
		{[]string{"replay", "--dump", fifo}, "not a file or block device"},
		{[]string{"replay", log, dir}, "not a file or block device"},
		{[]string{"replay", log, log}, "is the log itself"},
		{[]string{"replay", log, logLink}, "is the log itself"},
	} {
		done := make(chan struct{})
		var errs string
		var code int
		go func() { _, errs, code = gdm(c.args...); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second): // a watchdog: the fixed verb returns at once
			t.Fatalf("gdm %s: still running after 20 s", strings.Join(c.args, " "))
		}
		if code != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("gdm %s: exit %d, stderr %q; want exit 1 and %q", strings.Join(c.args, " "), code, errs, c.want)
		}
	}
	if after, _ := os.ReadFile(log); string(after) != string(before) {
		t.Fatal("the log changed")
	}
}
