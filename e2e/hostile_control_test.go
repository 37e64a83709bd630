package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// The control plane against unlucky operators: a full or read-only state
// directory, a backing file gone at restart, kill -9 in the middle of
// verbs, control requests that never finish, and a SIGTERM while a device
// is stuck.

// stuckBound is how long the tests let the daemon take for something that,
// broken, it would never do (exit, close a connection). Not a speed bound.
const stuckBound = 30 * time.Second

// mountTmpfs mounts a small tmpfs at dir for the test. Only root can; in
// CI (GDM_REQUIRE_TOOLS=1) not being able to is a failure.
func mountTmpfs(t *testing.T, dir string, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		testkit.SkipOrFail(t, "cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

func remount(t *testing.T, dir, mode string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s: %v %s", mode, err, out)
	}
}

// fillUp writes to dir until the filesystem is full.
func fillUp(t *testing.T, dir string) {
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for range 1 << 20 { // bounded: a 4 GiB filesystem at most
		if _, err := f.Write(buf); err != nil {
			return
		}
	}
	t.Fatal("the small tmpfs never filled up")
}

// verbFails runs a verb that must fail with want in its message.
func verbFails(t *testing.T, d *daemon, want string, args ...string) {
	t.Helper()
	out, err := d.try(args...)
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("gdm %s: %v %q; want a failure saying %q", strings.Join(args, " "), err, out, want)
	}
}

// With the state directory full, then read-only, verbs that must write
// state are refused and change nothing: not in memory (ls, table), not on
// disk (a kill -9 and a restart show the same devices). A remove on a full
// filesystem needs no space, and happens, durably.
func TestHostileStateDirFullOrReadOnly(t *testing.T) {
	dir := t.TempDir()
	mountTmpfs(t, filepath.Join(dir, "state"), "256k")
	d := startDaemon(t, dir)
	a := testkit.Sparse(t, t.TempDir(), "a.img", 1<<20)
	d.gdm("create", "keep", "--table", "0 2048 linear "+a+" 0")
	d.gdm("create", "spare", "--table", "0 8 zero")
	wantTable := d.gdm("table", "keep")

	refused := func(when string, verbs ...[]string) {
		t.Helper()
		before := d.gdm("ls")
		for _, v := range verbs {
			verbFails(t, d, "state not saved, nothing was changed", v...)
		}
		if got := d.gdm("ls"); got != before {
			t.Fatalf("%s: ls says\n%s\nwant\n%s", when, got, before)
		}
		if got := d.gdm("table", "keep", "--inactive"); got != "" {
			t.Fatalf("%s: a refused load left an inactive table: %q", when, got)
		}
	}
	create := []string{"create", "new", "--table", "0 8 zero"}
	load := []string{"load", "keep", "--table", "0 8 zero"}
	rename := []string{"rename", "keep", "other"}
	fillUp(t, d.state)
	refused("state dir full", create, load, rename)
	d.gdm("remove", "spare")
	os.Remove(filepath.Join(d.state, "filler"))
	remount(t, d.state, "ro")
	refused("state dir read-only", create, load, rename, []string{"remove", "keep"})
	remount(t, d.state, "rw")
	wantLs := d.gdm("ls")

	d.kill9()
	d2 := startDaemon(t, dir)
	if got := d2.gdm("ls"); got != wantLs {
		t.Fatalf("after restart ls says\n%s\nwant\n%s", got, wantLs)
	}
	if got := d2.gdm("table", "keep"); got != wantTable {
		t.Fatalf("after restart: table %q, want %q", got, wantTable)
	}
}

// A backing file gone at restart leaves that one device broken, with its
// reason; the daemon and every other device come up and serve; load and
// resume repair the broken one.
func TestHostileBrokenDeviceAtRestart(t *testing.T) {
	testkit.NeedTool(t, "nbdinfo")
	dir := t.TempDir()
	d := startDaemon(t, dir)
	files := t.TempDir()
	a := testkit.Sparse(t, files, "a.img", 1<<20)
	lost := testkit.Sparse(t, files, "lost.img", 1<<20)
	d.gdm("create", "good", "--table", "0 2048 linear "+a+" 0")
	d.gdm("create", "bad", "--table", "0 2048 linear "+lost+" 0")
	d.kill9()
	os.Remove(lost)

	d2 := startDaemon(t, dir)
	if out := d2.gdm("info", "bad"); !strings.Contains(out, "BROKEN") || !strings.Contains(out, "lost.img") {
		t.Fatalf("info of the device whose file is gone:\n%s", out)
	}
	if !strings.Contains(scrape(t, d2), `gdm_device_broken{device="bad"} 1`) {
		t.Fatal("gdm_device_broken does not show the broken device")
	}
	run(t, "nbdinfo", d2.uri("good"))
	if out, err := exec.Command("nbdinfo", d2.uri("bad")).CombinedOutput(); err == nil {
		t.Fatalf("a broken device was served:\n%s", out)
	}
	d2.gdm("load", "bad", "--table", "0 2048 linear "+a+" 0")
	d2.gdm("resume", "bad")
	run(t, "nbdinfo", d2.uri("bad"))
	if strings.Contains(scrape(t, d2), `gdm_device_broken{device="bad"} 1`) {
		t.Fatal("still broken after load + resume")
	}
}

// kill -9 while verbs run leaves no temp file behind after the next start,
// and every device that start finds is whole.
func TestHostileKill9DuringVerbs(t *testing.T) {
	dir := t.TempDir()
	for round := range 8 {
		d := startDaemon(t, dir)
		done := make(chan int)
		go func() {
			n := 0
			for i := range 200 {
				name := fmt.Sprintf("r%d-%d", round, i%4)
				if _, err := d.try("create", name, "--table", "0 8 zero"); err != nil {
					break // the daemon is gone
				}
				n++
				if _, err := d.try("remove", name); err != nil {
					break
				}
			}
			done <- n
		}()
		// Kill once the loop is well under way, at a different point each
		// round.
		deadline := time.Now().Add(stuckBound)
		for !strings.Contains(d.gdm("ls"), fmt.Sprintf("r%d-", round)) && time.Now().Before(deadline) {
		}
		d.kill9()
		<-done
	}
	devs := filepath.Join(dir, "state", "devices")
	os.WriteFile(filepath.Join(devs, ".tmp-planted.tmp"), []byte("{half a state"), 0o600)
	d := startDaemon(t, dir)
	if left, _ := filepath.Glob(filepath.Join(devs, ".tmp-*")); len(left) > 0 {
		t.Fatalf("temp files left after start: %v", left)
	}
	if !strings.Contains(scrape(t, d), "gdm_state_files_unreadable 0") {
		t.Fatalf("a device file was not whole after kill -9:\n%s", d.log)
	}
	for _, line := range strings.Split(strings.TrimSpace(d.gdm("ls")), "\n") {
		if strings.Contains(line, "BROKEN") {
			t.Fatalf("a device came back broken: %s", line)
		}
	}
}

// Control requests that never finish are cut off after --control-timeout;
// while many are open, verbs still work.
func TestHostileSlowControlRequests(t *testing.T) {
	d := startDaemon(t, "", "--control-timeout", "1s")
	base := measure(t, d)
	var conns []net.Conn
	for range 50 {
		c, err := net.Dial("unix", d.control)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/devices HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"na")
		conns = append(conns, c)
	}
	d.gdm("create", "z", "--table", "0 8 zero")
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(stuckBound))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("an unfinished control request was held open: %v", err)
		}
		c.Close()
	}
	d.gdm("remove", "z")
	backToBaseline(t, d, base)
}

// SIGTERM ends the daemon within --shutdown-timeout even while a client's
// request waits on a suspended device that nobody resumes.
func TestHostileShutdownWithStuckRequest(t *testing.T) {
	testkit.NeedTool(t, "qemu-io")
	d := startDaemon(t, "", "--shutdown-timeout", "2s")
	stuckRead(t, d)
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(stuckBound):
		t.Fatalf("SIGTERM with --shutdown-timeout 2s: still running after %v", stuckBound)
	}
	t.Logf("exited %v after SIGTERM, status %d", time.Since(start).Round(time.Millisecond), d.cmd.ProcessState.ExitCode())
}
