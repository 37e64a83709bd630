package e2e

import (
	"strings"
	"testing"
)

// After writes followed by FLUSH are acknowledged, kill -9 the daemon and
// start it again on the same state dir: devices are back as they were and
// the flushed data reads back intact.
func TestKill9KeepsDevicesAndFlushedData(t *testing.T) {
	needTool(t, "qemu-io")
	d := startDaemon(t, "")
	a := sparse(t, d.dir, "a.img", 32<<20)
	b := sparse(t, d.dir, "b.img", 32<<20)
	d.gdm("create", "k", "--table", "0 32768 striped 2 128 "+a+" 0 "+b+" 0", "--table", "32768 8192 linear "+a+" 16384")
	d.gdm("load", "k", "--table", "0 8192 zero")
	d.gdm("create", "other", "--table", "0 2048 linear "+b+" 20000", "--read-only")
	run(t, "qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 8M", "-c", "write -P 0xa5 16M 4M", "-c", "flush", d.uri("k"))
	before := d.gdm("info", "--json")
	tableBefore := d.gdm("table")
	inactiveBefore := d.gdm("table", "k", "--inactive")

	d.kill9()
	d.start()

	if after := d.gdm("info", "--json"); after != before {
		t.Fatalf("devices after kill -9 differ:\n%s\nwant\n%s", after, before)
	}
	if got := d.gdm("table"); got != tableBefore {
		t.Fatalf("tables after restart:\n%s\nwant\n%s", got, tableBefore)
	}
	if got := d.gdm("table", "k", "--inactive"); got != inactiveBefore {
		t.Fatalf("inactive table after restart: %q, want %q", got, inactiveBefore)
	}
	out := run(t, "qemu-io", "-f", "raw", "-r", "-c", "read -P 0x5a 0 8M", "-c", "read -P 0xa5 16M 4M", "-c", "read -P 0 12M 4M", d.uri("k"))
	if strings.Contains(out, "verification failed") || strings.Count(out, "read ") != 3 {
		t.Fatalf("flushed data after kill -9:\n%s", out)
	}
}

// A remove right after the client disconnects leaves the daemon with no
// backing file open, and the name is free at once.
func TestRemoveLeavesNoFileOpen(t *testing.T) {
	needTool(t, "qemu-io")
	d := startDaemon(t, "")
	files := t.TempDir()
	a := sparse(t, files, "a.img", 8<<20)
	b := sparse(t, files, "b.img", 8<<20)
	for i := range 3 {
		d.gdm("create", "x", "--table", "0 8192 striped 2 64 "+a+" 0 "+b+" 0")
		d.gdm("load", "x", "--table", "0 8192 linear "+b+" 0")
		run(t, "qemu-io", "-f", "raw", "-c", "write -P 7 0 1M", d.uri("x"))
		if n := len(openUnder(t, d.cmd.Process.Pid, files)); n != 3 {
			t.Fatalf("round %d: daemon has %d backing files open, want 3", i, n)
		}
		d.gdm("remove", "x")
		if open := openUnder(t, d.cmd.Process.Pid, files); len(open) != 0 {
			t.Fatalf("round %d: after remove the daemon still has open: %v", i, open)
		}
	}
}
