package main

import (
	"context"
	"encoding/json"
	"flag"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/internal/daemon"
	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/gdm-project/gdm/pkg/nbdclient"
	"github.com/gdm-project/gdm/pkg/nbdclient/nbdtest"
	"github.com/gdm-project/gdm/pkg/targets"
)

// targets lists every type the daemon maps, as dmsetup targets does
// ("name  vX.Y.Z"), each with the version of the kernel target it follows.
func TestTargetsVerb(t *testing.T) {
	td := startTestDaemon(t, "")
	out := td.ok(t, "targets")
	line := regexp.MustCompile(`^(\S+) +v([0-9]+)\.([0-9]+)\.([0-9]+)$`)
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil || m[2]+m[3]+m[4] == "000" {
			t.Fatalf("targets line %q is not a name and a version", l)
		}
		seen[m[1]] = true
	}
	for _, name := range targets.TypeNames() {
		if !seen[name] {
			t.Errorf("targets does not list %s:\n%s", name, out)
		}
	}
}

// deps lists the live table's backing devices: files by path, once each
// however many targets use them, block devices by number; every device
// with its name first.
func TestDepsVerb(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 8 linear "+a+" 0\n8 8 zero\n16 8 linear "+a+" 8")
	td.ok(t, "create", "z", "--table", "0 8 zero")
	if out := td.ok(t, "deps", "d"); out != "1 dependencies\t: ("+a+")\n" {
		t.Fatalf("deps d: %q", out)
	}
	if out := td.ok(t, "deps"); out != "d: 1 dependencies\t: ("+a+")\nz: 0 dependencies\t:\n" {
		t.Fatalf("deps: %q", out)
	}
	var deps controlapi.Deps
	if err := json.Unmarshal([]byte(td.ok(t, "deps", "d", "--json")), &deps); err != nil || len(deps.Devices) != 1 || deps.Devices[0].Kind != "file" || deps.Devices[0].Direct {
		t.Fatalf("deps --json (a file, through the page cache): %+v %v", deps, err)
	}
	out, err := exec.Command("losetup", "--find", "--show", a).Output()
	if err != nil {
		t.Logf("no loop device here (%v): block devices not tried", err)
		return
	}
	loop := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", loop).Run()
	td.ok(t, "create", "b", "--table", "0 8 linear "+loop+" 0")
	defer td.ok(t, "remove", "b")
	n := strings.TrimPrefix(loop, "/dev/loop")
	if out := td.ok(t, "deps", "b"); out != "1 dependencies\t: (7, "+n+")\n" {
		t.Fatalf("deps of a loop device: %q", out)
	}
	if out := td.ok(t, "deps", "b", "-o", "blkdevname"); out != "1 dependencies\t: (loop"+n+")\n" {
		t.Fatalf("deps -o blkdevname: %q", out)
	}
	if err := json.Unmarshal([]byte(td.ok(t, "deps", "b", "--json")), &deps); err != nil || len(deps.Devices) != 1 || !deps.Devices[0].Direct {
		t.Fatalf("deps --json of a loop device (read with O_DIRECT): %+v %v", deps, err)
	}
}

// gdm serve --file-direct reads and writes files with O_DIRECT, which
// deps --json says; the flag reaches the daemon's config.
func TestServeFileDirect(t *testing.T) {
	var s serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	s.register(fs)
	if err := fs.Parse([]string{"--file-direct"}); err != nil {
		t.Fatal(err)
	}
	if cfg, err := s.resolve(fs); err != nil || !cfg.FileDirect {
		t.Fatalf("--file-direct: FileDirect %v (%v)", cfg.FileDirect, err)
	}
	td := startTestDaemonWith(t, "", func(c *daemon.Config) { c.FileDirect = true })
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 8 linear "+a+" 0")
	var deps controlapi.Deps
	if err := json.Unmarshal([]byte(td.ok(t, "deps", "d", "--json")), &deps); err != nil || len(deps.Devices) != 1 || !deps.Devices[0].Direct {
		t.Fatalf("deps --json of a file under --file-direct: %+v %v", deps, err)
	}
}

// wipe_table puts error targets of the same size live and lets the
// backing files go; with an inactive table it is refused and changes
// nothing.
func TestWipeTableVerb(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 8 linear "+a+" 0\n8 8 zero")
	td.ok(t, "load", "d", "--table", "0 4 zero")
	td.fails(t, "inactive table", "wipe_table", "d")
	if out := td.ok(t, "table", "d"); out != "0 8 linear "+a+" 0\n8 8 zero \n" {
		t.Fatalf("table after a refused wipe_table: %q", out)
	}
	td.ok(t, "clear", "d")
	td.ok(t, "wipe_table", "d")
	if out := td.ok(t, "table", "d"); out != "0 16 error \n" {
		t.Fatalf("table after wipe_table: %q", out)
	}
	if out := td.ok(t, "deps", "d"); out != "0 dependencies\t:\n" {
		t.Fatalf("deps after wipe_table: %q", out)
	}
	var info controlapi.DeviceInfo
	if err := json.Unmarshal([]byte(td.ok(t, "info", "d", "--json")), &info); err != nil || info.InactiveTable || info.State != "ACTIVE" {
		t.Fatalf("info after wipe_table: %+v %v", info, err)
	}
}

// wait returns at once for an event number that is not the device's,
// after the next event for the one that is, gives up at --timeout, and
// fails when the device goes. As in dm, loads, clears, suspends and
// resumes are no events; a rename is.
func TestWaitVerb(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "d", "--table", "0 8 zero")
	events := func(name string) string {
		return strings.TrimSpace(td.ok(t, "info", name, "-c", "-o", "events", "--noheadings"))
	}
	td.ok(t, "load", "d", "--table", "0 16 zero")
	td.ok(t, "clear", "d")
	td.ok(t, "load", "d", "--table", "0 16 zero")
	td.ok(t, "suspend", "d")
	td.ok(t, "resume", "d")
	td.ok(t, "suspend", "d")
	td.ok(t, "resume", "d")
	if n := events("d"); n != "0" {
		t.Fatalf("event number %s after loads, a clear, suspends and resumes; dm's stays 0", n)
	}
	td.fails(t, "timed out", "wait", "d", "--timeout", "100ms")
	got := make(chan string, 1)
	go func() {
		out, errs, _ := td.cli("", "wait", "d", "0")
		got <- out + errs
	}()
	td.ok(t, "rename", "d", "e")
	if out := <-got; strings.TrimSpace(out) != "1" {
		t.Fatalf("wait d 0 across a rename: %q, want 1", out)
	}
	if n := events("e"); n != "1" {
		t.Fatalf("event number %s after a rename, want 1", n)
	}
	if out := td.ok(t, "wait", "e"); strings.TrimSpace(out) != "1" {
		t.Fatalf("wait e (from 0): %q, want 1 at once", out)
	}
	go func() {
		_, errs, _ := td.cli("", "wait", "e", "1")
		got <- errs
	}()
	td.ok(t, "remove", "e", "--force")
	if errs := <-got; !strings.Contains(errs, "no such device") {
		t.Fatalf("wait on a removed device: %q", errs)
	}
	// A device without a live table has no table to raise the event on.
	td.ok(t, "create", "n", "--notable")
	td.ok(t, "rename", "n", "m")
	if n := events("m"); n != "0" {
		t.Fatalf("event number %s after renaming a device without a live table, want 0 as in dm", n)
	}
	wantUsage(t, "wait", "d", "x")
	wantUsage(t, "wait", "d", "1", "--timeout", "-1s")
}

// A remote leg that goes down, and comes back, is an event: wait wakes,
// as dmsetup wait does when a multipath path fails.
func TestWaitWakesOnARemoteLeg(t *testing.T) {
	td := startTestDaemon(t, "")
	s := nbdtest.Start(t, nbdtest.Exports{"a": nbdtest.NewMem(1 << 20)})
	td.ok(t, "create", "d", "--table", "0 8 linear "+s.URI("a")+"&timeout=300ms 0")
	now := strings.TrimSpace(td.ok(t, "info", "d", "-c", "-o", "events", "--noheadings"))
	s.Stop()
	down := strings.TrimSpace(td.ok(t, "wait", "d", now, "--timeout", "10s"))
	if down == now {
		t.Fatalf("event number %s after the leg went down", down)
	}
	// I/O through gdm redials the leg once its server is back.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := nbdclient.Dial(ctx, nbdclient.Options{Network: "unix", Address: filepath.Join(td.dir, "nbd.sock"), Export: "d"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	s.Start()
	testkit.WaitFor(t, 10*time.Second, "a read through the leg", func() bool {
		return cl.ReadAt(ctx, make([]byte, 512), 0) == nil
	})
	if up := strings.TrimSpace(td.ok(t, "wait", "d", down, "--timeout", "10s")); up == down {
		t.Fatalf("event number %s after the leg came back", up)
	}
}

// --target TYPE keeps table and status to the lines of that type, and ls
// to the devices having one, as dmsetup's does; a device with none is
// left out of a listing of every device.
func TestTargetFilter(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "mix", "--table", "0 8 linear "+a+" 0\n8 8 zero\n16 8 linear "+a+" 8")
	td.ok(t, "create", "z", "--table", "0 8 zero")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"table", "mix", "--target", "linear"}, "0 8 linear " + a + " 0\n16 8 linear " + a + " 8\n"},
		{[]string{"table", "--target", "linear"}, "mix: 0 8 linear " + a + " 0\nmix: 16 8 linear " + a + " 8\n"},
		{[]string{"table", "z", "--target", "linear"}, ""},
		{[]string{"status", "--target", "zero"}, "mix: 8 8 zero \nz: 0 8 zero \n"},
		{[]string{"status", "mix", "--target", "error"}, ""},
		{[]string{"ls", "--target", "linear"}, "mix\t(24 sectors, ACTIVE)\n"},
		{[]string{"ls", "--target", "crypt"}, "No devices found\n"},
	} {
		if out := td.ok(t, c.args...); out != c.want {
			t.Errorf("gdm %s: %q, want %q", strings.Join(c.args, " "), out, c.want)
		}
	}
	var st []controlapi.DeviceStatus
	if err := json.Unmarshal([]byte(td.ok(t, "status", "--target", "linear", "--json")), &st); err != nil ||
		len(st) != 1 || st[0].Name != "mix" || len(st[0].Targets) != 2 {
		t.Fatalf("status --target linear --json: %+v %v", st, err)
	}
	var tt []controlapi.TableText
	if err := json.Unmarshal([]byte(td.ok(t, "table", "--target", "zero", "--json")), &tt); err != nil ||
		len(tt) != 2 || tt[0].Table != "8 8 zero\n" || tt[1].Table != "0 8 zero\n" {
		t.Fatalf("table --target zero --json: %+v %v", tt, err)
	}
}

// create --notable makes a device with no table, which a load and a
// resume give one; it survives a restart as it is, and is refused with a
// table.
func TestCreateNoTable(t *testing.T) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	td.ok(t, "create", "e", "--notable", "--uuid", "u-1")
	var info controlapi.DeviceInfo
	if err := json.Unmarshal([]byte(td.ok(t, "info", "e", "--json")), &info); err != nil || info.LiveTable || info.InactiveTable || info.UUID != "u-1" {
		t.Fatalf("info of a device made without a table: %+v %v", info, err)
	}
	if out := td.ok(t, "table", "e"); out != "" {
		t.Fatalf("table of a device without one: %q", out)
	}
	wantUsage(t, "create", "x", "--notable", "--table", "0 8 zero")
	// A table without target lines makes the device without a table, as
	// dmsetup create does; a load of one is refused, as dm refuses it.
	for name, stdin := range map[string]string{"c1": "", "c2": "# nothing\n\n"} {
		if _, errs, code := td.cli(stdin, "create", name); code != 0 {
			t.Fatalf("create %s with the table %q: exit %d: %s", name, stdin, code, errs)
		}
		if err := json.Unmarshal([]byte(td.ok(t, "info", name, "--json")), &info); err != nil || info.LiveTable || info.InactiveTable {
			t.Fatalf("info of %s, made from a table without targets: %+v %v", name, info, err)
		}
	}
	td.fails(t, "no targets", "load", "c2", "--table", "# nothing")
	td.Shutdown()
	td = startTestDaemon(t, dir)
	if err := json.Unmarshal([]byte(td.ok(t, "info", "e", "--json")), &info); err != nil || info.LiveTable || info.State != "ACTIVE" {
		t.Fatalf("after a restart: %+v %v", info, err)
	}
	td.ok(t, "load", "e", "--table", "0 8 zero")
	td.ok(t, "resume", "e")
	if out := td.ok(t, "table", "e"); out != "0 8 zero \n" {
		t.Fatalf("table after load and resume: %q", out)
	}
}

// info -c prints dmsetup's columns: a heading, then a line a device, with
// -o choosing the fields, --noheadings and --separator as dmsetup's.
func TestInfoColumns(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "a", "--table", "0 8 zero\n8 8 error", "--uuid", "ua")
	td.ok(t, "create", "b", "--table", "0 8 zero", "--uuid", "ub", "--read-only")
	td.ok(t, "load", "b", "--table", "0 16 zero")
	td.ok(t, "suspend", "b")
	out := td.ok(t, "info", "-c")
	want := "Name Maj Min Stat Open Targ Event UUID\n" +
		"a    -   -   L--w 0    2    0     ua\n" + // no load, suspend or resume is an event
		"b    -   -   LIsr 0    1    0     ub\n"
	if out != want {
		t.Fatalf("info -c:\n%q\nwant\n%q", out, want)
	}
	if out := td.ok(t, "info", "-c", "--noheadings", "-o", "name,attr,segments", "--separator", ":"); out != "a:L--w:2\nb:LIsr:1\n" {
		t.Fatalf("info -c --noheadings -o name,attr,segments --separator ':': %q", out)
	}
	td.ok(t, "rename", "b", "c")
	if out := td.ok(t, "info", "c", "-c", "-o", "events"); out != "Event\n1\n" {
		t.Fatalf("info c -c -o events after a rename: %q", out)
	}
	wantUsage(t, "info", "-c", "-o", "name,bogus")
}

// ls --tree draws each device's backing devices under it.
func TestLsTree(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	b := testkit.Sparse(t, td.dir, "b.img", 1<<20)
	td.ok(t, "create", "s", "--table", "0 16 striped 2 8 "+a+" 0 "+b+" 0")
	td.ok(t, "create", "z", "--table", "0 8 zero")
	want := "s\n ├─(" + a + ")\n └─(" + b + ")\nz\n"
	if out := td.ok(t, "ls", "--tree"); out != want {
		t.Fatalf("ls --tree:\n%s\nwant\n%s", out, want)
	}
}

// gdm info says why a device's saved inactive table was lost at start.
func TestInfoShowsLostInactive(t *testing.T) {
	var b strings.Builder
	printInfo(&b, controlapi.DeviceInfo{Name: "d", State: "ACTIVE", LiveTable: true, InactiveLost: "inactive table: lost.img: no such file"}, 0)
	if !strings.Contains(b.String(), "Inactive lost:     inactive table: lost.img: no such file\n") {
		t.Fatalf("info:\n%s", b.String())
	}
}
