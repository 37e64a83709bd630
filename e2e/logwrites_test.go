package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// sameBytes fails unless the two files hold the same bytes.
func sameBytes(t *testing.T, what, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s: %s and %s differ", what, a, b)
	}
}

// qemu's blklogwrites driver writes dm-log-writes' format too: a log it
// wrote, replayed by gdm onto a fresh file, gives the bytes qemu wrote to
// the device, and --dump lists its entries (qemu logs every request at
// once, with a flush entry at each flush).
func TestReplayQemuBlklogwrites(t *testing.T) {
	testkit.NeedTool(t, "qemu-io")
	dir := t.TempDir()
	dev, log, out := filepath.Join(dir, "dev"), filepath.Join(dir, "log"), testkit.Sparse(t, dir, "out", 4<<20)
	testkit.Sparse(t, dir, "dev", 4<<20)
	testkit.Sparse(t, dir, "log", 0)
	opts := "driver=blklogwrites,file.driver=file,file.filename=" + dev +
		",log.driver=file,log.filename=" + log + ",log-sector-size=512"
	run(t, "qemu-io", "--image-opts", opts,
		"-c", "write -P 0x11 0 1M", "-c", "flush",
		"-c", "write -P 0x22 4k 64k", "-c", "write -P 0x33 1M 512", "-c", "flush",
		"-c", "write -z 2M 64k", "-c", "write -P 0x44 3M 128k", "-c", "flush")
	dump := gdmOut(t, "replay", "--dump", log)
	for _, want := range []string{"0: sector 0, 2048 sectors, flags NONE", "1: sector 0, 0 sectors, flags FLUSH",
		"2: sector 8, 128 sectors, flags NONE", "3: sector 2048, 1 sectors, flags NONE"} {
		if !strings.Contains(dump, want+"\n") {
			t.Fatalf("--dump lacks %q:\n%s", want, dump)
		}
	}
	if strings.Count(dump, "flags FLUSH") < 3 {
		t.Fatalf("--dump shows fewer than 3 flushes:\n%s", dump)
	}
	gdmOut(t, "replay", log, out)
	sameBytes(t, "replay of qemu's log", dev, out)
}

// gdmOut runs a gdm verb that needs no daemon; it must succeed.
func gdmOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(gdmBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("gdm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The target over NBD: qemu-io writes and flushes through a log-writes
// device, a mark goes in by gdm message, resume --live is refused, and
// after the device is removed (the end mark) the log replays to the device
// as it was at the mark, and to its final bytes.
func TestLogWritesOverNBD(t *testing.T) {
	testkit.NeedTool(t, "qemu-io")
	d := startDaemon(t, "")
	dev, log := testkit.Sparse(t, d.dir, "dev", 4<<20), testkit.Sparse(t, d.dir, "log", 16<<20)
	table := "0 8192 log-writes " + dev + " " + log
	d.gdm("create", "lw", "--table", table)
	// writeback: plain writes and flushes (qemu-io's default writethrough
	// makes every write FUA).
	run(t, "qemu-io", "-f", "raw", "-t", "writeback", "-c", "write -P 0x5a 0 1M", "-c", "flush",
		"-c", "write -P 0xa5 512k 64k", "-c", "flush", d.uri("lw"))
	var entries, last int
	if st := d.gdm("status", "lw"); !strings.Contains(st, "log-writes ") ||
		func() bool {
			_, err := fmt.Sscanf(st[strings.Index(st, "log-writes ")+11:], "%d %d", &entries, &last)
			return err != nil
		}() ||
		entries < 4 || last < 1+1+2048+1+1+128 || strings.Contains(st, "logging_disabled") {
		t.Fatalf("status after two writes and two flushes:\n%s", st)
	}
	d.gdm("message", "lw", "0", "mark", "first")
	atMark := testkit.Sparse(t, d.dir, "at-mark", 4<<20)
	copyFile(t, dev, atMark)
	run(t, "qemu-io", "-f", "raw", "-c", "write -P 0x77 2M 256k", "-c", "flush", d.uri("lw"))
	d.gdm("load", "lw", "--table", table)
	if out, err := d.try("resume", "lw", "--live"); err == nil || !strings.Contains(out, "live swap refused") {
		t.Fatalf("resume --live of a log-writes table succeeded:\n%s", out)
	}
	d.gdm("clear", "lw")
	d.gdm("remove", "lw")
	dump := gdmOut(t, "replay", "--dump", log)
	if !strings.Contains(dump, "0: sector 0, 2048 sectors, flags NONE\n1: sector 0, 0 sectors, flags FLUSH\n") ||
		!strings.Contains(dump, `mark "first"`) || !strings.HasSuffix(dump, "mark \"dm-log-writes-end\"\n") {
		t.Fatalf("--dump:\n%s", dump)
	}
	out := testkit.Sparse(t, d.dir, "out", 4<<20)
	gdmOut(t, "replay", log, out, "--end-mark", "first")
	sameBytes(t, "replay to the mark", atMark, out)
	gdmOut(t, "replay", log, out, "--start-mark", "first")
	sameBytes(t, "replay of the rest", dev, out)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A log of 4096-byte sectors (qemu's log-sector-size) replays too: entry
// sectors and counts are in the log's sector size.
func TestReplayQemuBlklogwrites4K(t *testing.T) {
	testkit.NeedTool(t, "qemu-io")
	dir := t.TempDir()
	dev, log, out := testkit.Sparse(t, dir, "dev", 1<<20), testkit.Sparse(t, dir, "log", 0), testkit.Sparse(t, dir, "out", 1<<20)
	run(t, "qemu-io", "--image-opts", "driver=blklogwrites,file.driver=file,file.filename="+dev+
		",log.driver=file,log.filename="+log+",log-sector-size=4096",
		"-c", "write -P 0x31 4k 64k", "-c", "flush", "-c", "discard 8k 4k", "-c", "write -P 0x32 512k 8k", "-c", "flush")
	dump := gdmOut(t, "replay", "--dump", log)
	if !strings.Contains(dump, "sector size 4096") || !strings.Contains(dump, "0: sector 1, 16 sectors, flags NONE\n") ||
		!strings.Contains(dump, "sector 2, 1 sectors, flags DISCARD\n") {
		t.Fatalf("--dump:\n%s", dump)
	}
	gdmOut(t, "replay", log, out)
	sameBytes(t, "replay of qemu's 4 KiB-sector log", dev, out)
}
