package daemon

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeSystemd is the receiving end of $NOTIFY_SOCKET.
func fakeSystemd(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

// next returns the next datagram, failing the test after a generous wait.
func next(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

// Under systemd (Type=notify, WatchdogSec=): READY=1 comes once every
// saved device is restored and the control socket answers, WATCHDOG=1
// keep-alives follow at half the interval, and STOPPING=1 at shutdown, after
// which nothing more is sent.
func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	img := filepath.Join(dir, "a.img")
	os.WriteFile(img, make([]byte, 1<<20), 0o600)
	td.ok(t, "create", "kept", "--table", "0 2048 linear "+img+" 0")
	td.Shutdown()

	sd, path := fakeSystemd(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	started := make(chan *Running, 1)
	go func() {
		r, err := Start(testConfig(dir), nil)
		if err != nil {
			t.Error(err)
		}
		started <- r
	}()

	ready := next(t, sd)
	if !strings.Contains(ready, "READY=1\n") || !strings.Contains(ready, "MAINPID="+strconv.Itoa(os.Getpid())) ||
		!strings.Contains(ready, "STATUS=serving 1 devices") {
		t.Fatalf("first notification %q, want READY=1 with MAINPID and STATUS", ready)
	}
	// The restored device answers as soon as READY is out.
	td2 := &testDaemon{dir: dir, control: testConfig(dir).Control}
	if info := td2.info(t, "kept"); info.State != "ACTIVE" || info.SizeBytes != 1<<20 {
		t.Fatalf("after READY, the restored device is %s of %d bytes", info.State, info.SizeBytes)
	}
	r := <-started
	if r == nil {
		t.FailNow()
	}
	for i := 0; i < 3; i++ {
		if got := next(t, sd); got != "WATCHDOG=1" {
			t.Fatalf("keep-alive %d: %q", i, got)
		}
	}
	r.Shutdown()
	for {
		got := next(t, sd)
		if got == "WATCHDOG=1" {
			continue // sent before shutdown began
		}
		if !strings.HasPrefix(got, "STOPPING=1\n") {
			t.Fatalf("at shutdown: %q, want STOPPING=1", got)
		}
		break
	}
	sd.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := sd.Read(make([]byte, 64)); err == nil {
		t.Fatalf("a notification after STOPPING (%d bytes)", n)
	}
}

// Another process's watchdog (WATCHDOG_PID of a child) is not ours to feed;
// without NOTIFY_SOCKET nothing is sent at all.
func TestSystemdNotifyOnlyWhenAsked(t *testing.T) {
	_, path := fakeSystemd(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", "1")
	if n := newNotifier(); n.watchdog != 0 {
		t.Fatalf("watchdog %v for another process's pid", n.watchdog)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if n := newNotifier(); n.addr != nil || n.send("READY=1") != nil {
		t.Fatal("a notifier without NOTIFY_SOCKET")
	}
}
