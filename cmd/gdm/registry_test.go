package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// liveness bounds how long an operation that must not wait on another
// device may take before the test calls it stuck. It is not a speed
// assertion: blocked, the operation would never return.
const liveness = 20 * time.Second

// within runs f and fails the test if it has not returned in liveness.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(liveness):
		t.Fatalf("%s: still waiting after %v: it waits on another device's verb", what, liveness)
	}
}

// A verb held in its slow part (parsing, opening files) on one device
// holds up nothing else: verbs on other devices, listing, handshakes and
// scrapes all complete meanwhile.
func TestSlowVerbHoldsUpNoOtherDevice(t *testing.T) {
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "other", "--table", "0 2048 linear "+a+" 0")
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	td.d.buildHook = func(name string) {
		if name == "slow" {
			once.Do(func() { close(held) })
			<-release
		}
	}
	slowDone := make(chan string, 1)
	go func() {
		_, errs, _ := td.cli("", "create", "slow", "--table", "0 8 zero")
		slowDone <- errs
	}()
	<-held
	within(t, "ls", func() { td.ok(t, "ls") })
	within(t, "info of another device", func() { td.ok(t, "info", "other") })
	within(t, "load + resume of another device", func() {
		td.ok(t, "load", "other", "--table", "0 1024 linear "+a+" 0")
		td.ok(t, "resume", "other")
	})
	within(t, "create and remove of a third device", func() {
		td.ok(t, "create", "third", "--table", "0 8 zero")
		td.ok(t, "remove", "third")
	})
	within(t, "handshake and I/O to another device", func() {
		c := dialNBD(t, td.addrs["nbd-unix"], "other")
		if e, _, err := c.do(0, 0, 512, nil); e != 0 || err != nil {
			t.Errorf("read: %d %v", e, err)
		}
		c.disconnect()
	})
	within(t, "metrics scrape", func() {
		if _, err := newRegistry(td.d).Gather(); err != nil {
			t.Error(err)
		}
	})
	// The name being created is taken meanwhile: a second create of it is
	// refused, not queued behind the first.
	within(t, "a second create of the same name", func() { td.fails(t, "already exists", "create", "slow", "--table", "0 8 zero") })
	close(release)
	if errs := <-slowDone; errs != "" {
		t.Fatalf("the slow create: %s", errs)
	}
}

// The view of one device: what info says, its tables, and its state file.
func deviceView(t *testing.T, td *testDaemon, name string) string {
	t.Helper()
	info, _, code := td.cli("", "info", name, "--json")
	if code != 0 {
		return "absent"
	}
	var i deviceInfo
	json.Unmarshal([]byte(info), &i)
	i.EventNumber, i.Holders = 0, 0 // these move without a verb
	live := td.ok(t, "table", name)
	inactive := td.ok(t, "table", name, "--inactive")
	return fmt.Sprintf("%+v live=%q inactive=%q", i, live, inactive)
}

// With the state directory unwritable, every verb is refused and changes
// nothing, in memory or on disk: a restart shows the same devices.
func TestVerbsAreAtomicWhenStateCannotBeSaved(t *testing.T) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	a := testkit.Sparse(t, dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 linear "+a+" 0")
	td.ok(t, "load", "d", "--table", "0 1024 linear "+a+" 0")
	td.ok(t, "create", "s", "--table", "0 8 zero")
	td.ok(t, "suspend", "s")
	before := map[string]string{"d": deviceView(t, td, "d"), "s": deviceView(t, td, "s")}
	td.d.state.failWrites.Store(true)
	for _, verb := range [][]string{
		{"create", "new", "--table", "0 8 zero"},
		{"load", "d", "--table", "0 8 zero"},
		{"resume", "d"},
		{"resume", "s"},
		{"suspend", "d"},
		{"clear", "d"},
		{"rename", "d", "e"},
		{"remove", "d"},
		{"remove", "s", "--force"},
	} {
		td.fails(t, "state not saved, nothing was changed", verb...)
	}
	for name, want := range before {
		if got := deviceView(t, td, name); got != want {
			t.Errorf("%s changed by refused verbs:\n%s\nwant\n%s", name, got, want)
		}
	}
	for _, name := range []string{"new", "e"} {
		if got := deviceView(t, td, name); got != "absent" {
			t.Errorf("refused verb left device %s: %s", name, got)
		}
	}
	td.d.state.failWrites.Store(false)
	td.running.shutdown()
	td2 := startTestDaemon(t, dir)
	for name, want := range before {
		if got := deviceView(t, td2, name); got != want {
			t.Errorf("%s after restart:\n%s\nwant\n%s", name, got, want)
		}
	}
}

// Verbs racing on one name never answer with a dropped connection or a
// half-made device: each answer is a well-formed success or refusal, and
// what is left is consistent with the state on disk.
func TestRacingVerbsOnOneName(t *testing.T) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				var args []string
				switch (g + i) % 4 {
				case 0:
					args = []string{"create", "x", "--table", "0 8 zero"}
				case 1:
					args = []string{"remove", "x", "--force"}
				case 2:
					args = []string{"rename", "x", "y"}
				case 3:
					args = []string{"rename", "y", "x"}
				}
				_, errs, code := td.cli("", args...)
				if code != 0 && !strings.Contains(errs, "no such device") && !strings.Contains(errs, "already exists") {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%v: %d %s", args, code, errs))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("unexpected answers:\n%s", strings.Join(bad, "\n"))
	}
	want := td.ok(t, "ls")
	td.running.shutdown()
	if got := startTestDaemon(t, dir).ok(t, "ls"); got != want {
		t.Fatalf("after restart ls says\n%s\nwant\n%s", got, want)
	}
}

func TestNamesAndUUIDsRefused(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "a", "--table", "0 8 zero", "--uuid", "LVM-abc:1")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create", ".", "--table", "0 8 zero"}, "bad device name"},
		{[]string{"create", "..", "--table", "0 8 zero"}, "bad device name"},
		{[]string{"rename", "a", ".."}, "bad device name"},
		{[]string{"create", "b", "--table", "0 8 zero", "--uuid", "LVM-abc:1"}, "uuid already in use"},
		{[]string{"create", "b", "--table", "0 8 zero", "--uuid", "a\x00b"}, "bad uuid"},
		{[]string{"create", "b", "--table", "0 8 zero", "--uuid", "a\nb"}, "bad uuid"},
		{[]string{"create", "b", "--table", "0 8 zero", "--uuid", strings.Repeat("u", 129)}, "bad uuid"},
	} {
		td.fails(t, c.want, c.args...)
	}
	// A huge uuid is refused without echoing it back whole.
	_, errs, code := td.cli("", "create", "b", "--table", "0 8 zero", "--uuid", strings.Repeat("u", 1<<20))
	if code != 1 || !strings.Contains(errs, "bad uuid") || len(errs) > 1024 {
		t.Fatalf("1 MiB uuid: exit %d, %d bytes of error", code, len(errs))
	}
	if out := td.ok(t, "ls"); strings.Count(out, "\n") != 1 {
		t.Fatalf("refused creates left devices:\n%s", out)
	}
}

// Temp files a kill -9 left in the state directory are removed at start.
func TestStartRemovesLeftoverTempFiles(t *testing.T) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	td.ok(t, "create", "d", "--table", "0 8 zero")
	td.running.shutdown()
	devs := filepath.Join(dir, "state", "devices")
	for _, p := range []string{filepath.Join(devs, ".tmp-123.tmp"), filepath.Join(dir, "state", ".state-9.tmp")} {
		if err := os.WriteFile(p, []byte("{half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	td2 := startTestDaemon(t, dir)
	for _, p := range []string{filepath.Join(devs, ".tmp-123.tmp"), filepath.Join(dir, "state", ".state-9.tmp")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left in place", p)
		}
	}
	td2.ok(t, "info", "d")
}

// A device that cannot be restored does not stop the daemon: the others
// start, it is shown broken with its reason (info, ls, metric), refuses
// connections, and load + resume repair it; its state file is kept.
func TestBrokenDeviceAtStart(t *testing.T) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	a := testkit.Sparse(t, dir, "a.img", 1<<20)
	lost := testkit.Sparse(t, dir, "lost.img", 1<<20)
	td.ok(t, "create", "good", "--table", "0 2048 linear "+a+" 0")
	td.ok(t, "create", "bad", "--table", "0 2048 linear "+lost+" 0", "--uuid", "keep-me")
	td.running.shutdown()
	os.Remove(lost)
	files, _ := filepath.Glob(filepath.Join(dir, "state", "devices", "*.json"))
	saved := map[string][]byte{}
	for _, f := range files {
		saved[f], _ = os.ReadFile(f)
	}

	td2 := startTestDaemon(t, dir)
	out := td2.ok(t, "info", "bad")
	if !strings.Contains(out, "State:             BROKEN") || !strings.Contains(out, "lost.img") {
		t.Fatalf("info of the broken device:\n%s", out)
	}
	if out := td2.ok(t, "ls"); !strings.Contains(out, "bad\t(0 sectors, BROKEN)") || !strings.Contains(out, "good\t(2048 sectors, ACTIVE)") {
		t.Fatalf("ls:\n%s", out)
	}
	if err := testutil.GatherAndCompare(newRegistry(td2.d), strings.NewReader(`
# HELP gdm_device_broken 1 for a device that could not be restored at start (see gdm info); load and resume repair it.
# TYPE gdm_device_broken gauge
gdm_device_broken{device="bad"} 1
gdm_device_broken{device="good"} 0
`), "gdm_device_broken"); err != nil {
		t.Fatal(err)
	}
	c := dialNBD(t, td2.addrs["nbd-unix"], "good")
	if e, _, err := c.do(0, 0, 512, nil); e != 0 || err != nil {
		t.Fatalf("the good device: %d %v", e, err)
	}
	if _, err := tryDialNBD(td2.addrs["nbd-unix"], "bad"); err == nil {
		t.Fatal("a broken device accepted a connection")
	}
	td2.fails(t, "device is broken", "resume", "bad")
	td2.fails(t, "device is broken", "suspend", "bad")
	for f, b := range saved { // nothing rewrote the state on the way
		if now, _ := os.ReadFile(f); !bytes.Equal(now, b) {
			t.Fatalf("%s changed by a start with a broken device", f)
		}
	}
	td2.ok(t, "load", "bad", "--table", "0 1024 linear "+a+" 0")
	td2.ok(t, "resume", "bad")
	if out := td2.ok(t, "info", "bad"); !strings.Contains(out, "State:             ACTIVE") || !strings.Contains(out, "keep-me") {
		t.Fatalf("after repair:\n%s", out)
	}
	td2.running.shutdown()
	td3 := startTestDaemon(t, dir)
	if out := td3.ok(t, "table", "bad"); out != "0 1024 linear "+a+" 0\n" {
		t.Fatalf("repaired table after restart: %q", out)
	}
	td3.ok(t, "remove", "bad")
}

// tryDialNBD does a GO handshake and reports whether the server accepted.
func tryDialNBD(socket, name string) (net.Conn, error) {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.Close()
	var hello [18]byte
	if _, err := io.ReadFull(c, hello[:]); err != nil {
		return nil, err
	}
	opt := []byte{0, 0, 0, 3, 'I', 'H', 'A', 'V', 'E', 'O', 'P', 'T', 0, 0, 0, 7}
	data := append([]byte{0, 0, 0, byte(len(name))}, name...)
	data = append(data, 0, 0)
	opt = append(opt, 0, 0, 0, byte(len(data)))
	c.Write(append(opt, data...))
	for {
		var h [20]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return nil, err
		}
		typ := uint32(h[12])<<24 | uint32(h[13])<<16 | uint32(h[14])<<8 | uint32(h[15])
		n := int(h[16])<<24 | int(h[17])<<16 | int(h[18])<<8 | int(h[19])
		if _, err := io.ReadFull(c, make([]byte, n)); err != nil {
			return nil, err
		}
		switch {
		case typ == 1:
			return c, nil
		case typ&(1<<31) != 0:
			return nil, fmt.Errorf("GO refused: %#x", typ)
		}
	}
}

// A control request whose body never finishes is cut off after
// --control-timeout, and the control API keeps answering others.
func TestControlRequestTimeout(t *testing.T) {
	dir := t.TempDir()
	cfg := serveConfig{control: filepath.Join(dir, "control.sock"), stateDir: filepath.Join(dir, "state"),
		logLevel: "error", shutdownWait: 10 * time.Second, controlTimeout: 500 * time.Millisecond}
	r, err := startServer(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.shutdown()
	c, err := net.Dial("unix", cfg.control)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/devices HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"name\":")
	c.SetReadDeadline(time.Now().Add(liveness))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the daemon held an unfinished request open for %v", liveness)
	}
	if len(b) > 0 && !strings.Contains(string(b), "400") {
		t.Fatalf("unfinished request answered %q", b)
	}
	td := &testDaemon{running: r, dir: dir, control: cfg.control}
	td.ok(t, "ls")
}

// SIGTERM's shutdown ends within --shutdown-timeout even when a table can
// never drain (a holder that is never given back stands for a backing
// device that hangs).
func TestShutdownIsBounded(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "d", "--table", "0 8 zero")
	m := mustGet(t, td, "d")
	stuck := m.dev.Acquire(false) // not given back until the test ends
	t.Cleanup(stuck.Put)
	td.running.cfg.shutdownWait = 300 * time.Millisecond
	var err error
	within(t, "shutdown", func() { err = td.running.shutdown() })
	if err == nil || !strings.Contains(err.Error(), "closing devices") {
		t.Fatalf("shutdown with a stuck table: %v", err)
	}
}

// --allow-path: a table may map only files whose real path lies under an
// allowed directory; a symlink from inside to outside does not get out.
func TestAllowPath(t *testing.T) {
	dir := t.TempDir()
	allowed := filepath.Join(dir, "allowed")
	os.Mkdir(allowed, 0o700)
	inside := testkit.Sparse(t, allowed, "in.img", 1<<20)
	outside := testkit.Sparse(t, dir, "out.img", 1<<20)
	escape := filepath.Join(allowed, "escape.img")
	if err := os.Symlink(outside, escape); err != nil {
		t.Fatal(err)
	}
	cfg := serveConfig{control: filepath.Join(dir, "control.sock"), stateDir: filepath.Join(dir, "state"),
		logLevel: "error", shutdownWait: 10 * time.Second}
	if err := cfg.allowPaths.Set(allowed); err != nil {
		t.Fatal(err)
	}
	r, err := startServer(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.shutdown()
	td := &testDaemon{running: r, dir: dir, control: cfg.control}
	td.ok(t, "create", "in", "--table", "0 2048 linear "+inside+" 0")
	td.fails(t, "not allowed", "create", "out", "--table", "0 2048 linear "+outside+" 0")
	td.fails(t, "not allowed", "create", "esc", "--table", "0 2048 linear "+escape+" 0")
	td.fails(t, "not allowed", "load", "in", "--table", "0 2048 linear "+escape+" 0")
}

// Definitions an older gdm accepted (a uuid used twice, a uuid dm refuses)
// come back as broken devices, visible and removable, not hidden.
func TestRestoreOldDefinitions(t *testing.T) {
	dir := t.TempDir()
	store := &stateStore{dir: filepath.Join(dir, "state")}
	if _, _, err := store.open(); err != nil {
		t.Fatal(err)
	}
	for _, st := range []deviceState{
		{ID: "a", Name: "first", UUID: "same", Live: "0 8 zero\n"},
		{ID: "b", Name: "second", UUID: "same", Live: "0 8 zero\n"},
		{ID: "c", Name: "weird", UUID: "a\x00b\n" + strings.Repeat("u", 4096), Live: "0 8 zero\n"},
	} {
		if err := store.save(st); err != nil {
			t.Fatal(err)
		}
	}
	td := startTestDaemon(t, dir)
	if out := td.ok(t, "info", "first"); !strings.Contains(out, "ACTIVE") {
		t.Fatalf("first of two with one uuid:\n%s", out)
	}
	if out := td.ok(t, "info", "second"); !strings.Contains(out, "BROKEN") || !strings.Contains(out, "uuid already in use") {
		t.Fatalf("second of two with one uuid:\n%s", out)
	}
	if out := td.ok(t, "info", "weird"); !strings.Contains(out, "BROKEN") || !strings.Contains(out, "bad uuid") || len(out) > 2048 {
		t.Fatalf("a uuid dm refuses:\n%s", out)
	}
	td.ok(t, "remove", "second")
	td.ok(t, "remove", "weird")
}
