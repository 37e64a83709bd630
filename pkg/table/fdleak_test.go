package table

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"

	"golang.org/x/sys/unix"
)

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// A table whose load fails after it opened backing devices closes them all:
// loading many such tables, of every target type and every way of failing
// the device layer knows (too small, a FIFO, a directory, a character
// device, a missing path, a later line failing), leaves the process with
// the descriptors it had. Found by counting /proc/self/fd, as a daemon
// refusing a user's tables all day would.
func TestFailedLoadsCloseEveryDevice(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	small := filepath.Join(dir, "small")
	for p, size := range map[string]int64{big: 4 << 20, small: 4096} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	key := "000102030405060708090a0b0c0d0e0f"
	texts := []string{
		"0 64 linear %[1]s 0\n64 64 linear %[2]s 0",                     // second device too small
		"0 64 linear %[1]s 0\n64 64 linear %[3]s 0",                     // a FIFO
		"0 64 linear %[1]s 0\n64 64 linear %[4]s 0",                     // a directory
		"0 64 linear %[1]s 0\n64 64 linear /dev/null 0",                 // a character device
		"0 64 linear %[1]s 0\n64 64 linear %[5]s 0",                     // missing
		"0 64 striped 2 8 %[1]s 0 %[2]s 0",                              // second leg too small
		"0 64 striped 2 8 %[1]s 0 %[5]s 0",                              // second leg missing
		"0 64 delay %[1]s 0 10 %[2]s 0 10",                              // write device too small
		"0 64 delay %[1]s 0 10 %[5]s 0 10",                              // write device missing
		"0 64 flakey %[1]s 0 1 1 1 nosuchfeature",                       // bad feature after the open
		"0 64 dust %[1]s 0 999",                                         // bad block size
		"0 64 dust %[1]s 0 512 nosuchfeature",                           // bad feature
		"0 64 crypt aes-xts-plain64 " + key + key + " 0 %[2]s 0",        // device too small
		"0 64 crypt aes-cbc-essiv:sha256 " + key + " 0 %[1]s 0 1 bogus", // bad option
		"0 64 log-writes %[1]s %[3]s",                                   // log device a FIFO
		"0 64 log-writes %[1]s %[5]s",                                   // log device missing
		"0 64 snapshot %[1]s %[2]s P 8",                                 // COW device too small
		"0 64 snapshot %[1]s %[5]s P 8",                                 // COW device missing
		"0 64 snapshot %[1]s %[1]s P 8",                                 // COW store not valid
		"0 64 snapshot-merge %[1]s %[2]s P 8",                           // COW device too small
		"0 64 snapshot-origin %[1]s\n64 64 linear %[5]s 0",              // a later line fails
		"0 64 linear %[1]s 0\n64 64 nosuchtarget",                       // unknown type
	}
	load := func() {
		for _, f := range texts {
			text := fmt.Sprintf(f, big, small, fifo, dir, missing)
			tb, err := FromText(text, false)
			if err == nil {
				tb.destroy(discardLog(), false)
				t.Errorf("%q was accepted", text)
			}
		}
	}
	load() // lazily made pools and goroutines settle
	before, goroutines := openFDs(t), runtime.NumGoroutine()
	for range 20 {
		load()
	}
	if after := openFDs(t); after != before {
		t.Fatalf("%d failed loads: %d descriptors open, %d before", 20*len(texts), after, before)
	}
	// Goroutines a failed constructor started end on their own time: wait
	// for them, bounded, rather than count them at once.
	testkit.WaitFor(t, 10*time.Second, "goroutines of failed loads to end", func() bool {
		return runtime.NumGoroutine() <= goroutines
	})
}
