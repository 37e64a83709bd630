package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
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
	slowDone := make(chan error, 1)
	go func() {
		_, err := td.call("create", "slow", "--table", "0 8 zero")
		slowDone <- err
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
	if err := <-slowDone; err != nil {
		t.Fatalf("the slow create: %v", err)
	}
}

// The view of one device: what info says, its tables, and its state file.
func deviceView(t *testing.T, td *testDaemon, name string) string {
	t.Helper()
	info, err := td.call("info", name)
	if err != nil {
		return "absent"
	}
	var i controlapi.DeviceInfo
	json.Unmarshal([]byte(info), &i)
	i.EventNumber, i.Holders = 0, 0 // these move without a verb
	live := td.ok(t, "table", name)
	inactive := td.ok(t, "table", name, "--inactive")
	return fmt.Sprintf("%+v live=%q inactive=%q", i, live, inactive)
}

// With the state directory unwritable, every verb is refused and changes
// nothing, in memory or on disk: a restart shows the same devices.
func TestVerbsAreAtomicWhenStateCannotBeSaved(t *testing.T) {
	checkVerbsAtomic(t, func(td *testDaemon) { td.d.state.failWrites.Store(true) },
		func(td *testDaemon) { td.d.state.failWrites.Store(false) })
}

// The same when the change reaches the directory and only its fsync
// fails: the file renamed into place (or the one removed) is put back, so
// that a restart does not find the refused change.
func TestVerbsAreAtomicWhenTheDirectorySyncFails(t *testing.T) {
	checkVerbsAtomic(t, func(td *testDaemon) { td.d.state.failDirSyncs.Store(1) },
		func(td *testDaemon) { td.d.state.failDirSyncs.Store(0) })
}

// checkVerbsAtomic runs every verb with inject's fault in force (before
// each verb, so that a fault used up by one verb is there for the next)
// and checks that each is refused and none changes a device, before and
// after a restart.
func checkVerbsAtomic(t *testing.T, inject, clear func(*testDaemon)) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	a := testkit.Sparse(t, dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 linear "+a+" 0")
	td.ok(t, "load", "d", "--table", "0 1024 linear "+a+" 0")
	td.ok(t, "create", "s", "--table", "0 8 zero")
	td.ok(t, "suspend", "s")
	before := map[string]string{"d": deviceView(t, td, "d"), "s": deviceView(t, td, "s")}
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
		inject(td)
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
	clear(td)
	td.Shutdown()
	td2 := startTestDaemon(t, dir)
	for name, want := range before {
		if got := deviceView(t, td2, name); got != want {
			t.Errorf("%s after restart:\n%s\nwant\n%s", name, got, want)
		}
	}
	for _, name := range []string{"new", "e"} {
		if got := deviceView(t, td2, name); got != "absent" {
			t.Errorf("refused verb left device %s after restart: %s", name, got)
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
				_, err := td.call(args...)
				if err != nil && !strings.Contains(err.Error(), "no such device") && !strings.Contains(err.Error(), "already exists") {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%v: %v", args, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("unexpected answers:\n%s", strings.Join(bad, "\n"))
	}
	want := lsWithoutEvents(t, td)
	td.Shutdown()
	if got := lsWithoutEvents(t, startTestDaemon(t, dir)); got != want {
		t.Fatalf("after restart ls says\n%s\nwant\n%s", got, want)
	}
}

// lsWithoutEvents is ls with the event numbers left out: a rename moves a
// device's, and a restart starts it again from 0, as a reboot does dm's.
func lsWithoutEvents(t *testing.T, td *testDaemon) string {
	t.Helper()
	var devs []controlapi.DeviceInfo
	if err := json.Unmarshal([]byte(td.ok(t, "ls")), &devs); err != nil {
		t.Fatal(err)
	}
	for i := range devs {
		devs[i].EventNumber = 0
	}
	return fmt.Sprintf("%+v", devs)
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
	_, err := td.call("create", "b", "--table", "0 8 zero", "--uuid", strings.Repeat("u", 1<<20))
	if err == nil || !strings.Contains(err.Error(), "bad uuid") || len(err.Error()) > 1024 {
		t.Fatalf("1 MiB uuid: %d bytes of error", len(fmt.Sprint(err)))
	}
	if out := td.ok(t, "ls"); strings.Count(out, `"name"`) != 1 {
		t.Fatalf("refused creates left devices:\n%s", out)
	}
}

// Temp files a kill -9 left in the state directory are removed at start.
func TestStartRemovesLeftoverTempFiles(t *testing.T) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	td.ok(t, "create", "d", "--table", "0 8 zero")
	td.Shutdown()
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
	td.Shutdown()
	os.Remove(lost)
	saved := readStateFiles(dir)

	td2 := startTestDaemon(t, dir)
	if i := td2.info(t, "bad"); i.State != "BROKEN" || i.Sectors != 0 || !strings.Contains(i.Broken, "lost.img") {
		t.Fatalf("info of the broken device: %+v", i)
	}
	if i := td2.info(t, "good"); i.State != "ACTIVE" || i.Sectors != 2048 {
		t.Fatalf("info of the good device: %+v", i)
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
	stateFilesUnchanged(t, saved, "a start with a broken device") // nothing rewrote the state on the way
	td2.ok(t, "load", "bad", "--table", "0 1024 linear "+a+" 0")
	td2.ok(t, "resume", "bad")
	if i := td2.info(t, "bad"); i.State != "ACTIVE" || i.UUID != "keep-me" {
		t.Fatalf("after repair: %+v", i)
	}
	td2.Shutdown()
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
	cfg := Config{Control: filepath.Join(dir, "control.sock"), StateDir: filepath.Join(dir, "state"),
		LogLevel: slog.LevelError, ShutdownWait: 10 * time.Second, ControlTimeout: 500 * time.Millisecond}
	r, err := Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()
	c, err := net.Dial("unix", cfg.Control)
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
	td := &testDaemon{Running: r, dir: dir, control: cfg.Control}
	td.ok(t, "ls")
}

// SIGTERM's shutdown ends within --shutdown-timeout even when a table can
// never drain (a holder that is never given back stands for a backing
// device that hangs).
func TestShutdownIsBounded(t *testing.T) {
	td := startTestDaemon(t, "")
	td.ok(t, "create", "d", "--table", "0 8 zero")
	m := mustGet(t, td, "d")
	stuck, err := m.dev.Get(context.Background()) // not given back until the test ends
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stuck.Put)
	td.cfg.ShutdownWait = 300 * time.Millisecond
	within(t, "shutdown", func() { err = td.Shutdown() })
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
	cfg := Config{Control: filepath.Join(dir, "control.sock"), StateDir: filepath.Join(dir, "state"),
		LogLevel: slog.LevelError, ShutdownWait: 10 * time.Second}
	real, err := filepath.EvalSymlinks(allowed)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AllowPaths = []string{real}
	r, err := Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()
	td := &testDaemon{Running: r, dir: dir, control: cfg.Control}
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
	if i := td.info(t, "first"); i.State != "ACTIVE" {
		t.Fatalf("first of two with one uuid: %+v", i)
	}
	if i := td.info(t, "second"); i.State != "BROKEN" || !strings.Contains(i.Broken, "uuid already in use") {
		t.Fatalf("second of two with one uuid: %+v", i)
	}
	if out := td.ok(t, "info", "weird"); !strings.Contains(out, "BROKEN") || !strings.Contains(out, "bad uuid") || len(out) > 2048 {
		t.Fatalf("a uuid dm refuses:\n%s", out)
	}
	td.ok(t, "remove", "second")
	td.ok(t, "remove", "weird")
}

// readStateFiles reads the device state files under dir's state directory.
func readStateFiles(dir string) map[string][]byte {
	files, _ := filepath.Glob(filepath.Join(dir, "state", "devices", "*.json"))
	saved := map[string][]byte{}
	for _, f := range files {
		saved[f], _ = os.ReadFile(f)
	}
	return saved
}

// stateFilesUnchanged fails t if a state file read by readStateFiles changed
// since, by what.
func stateFilesUnchanged(t *testing.T, saved map[string][]byte, what string) {
	t.Helper()
	for f, b := range saved {
		if now, _ := os.ReadFile(f); !bytes.Equal(now, b) {
			t.Fatalf("%s changed by %s", f, what)
		}
	}
}
