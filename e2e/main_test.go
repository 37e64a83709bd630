// Package e2e runs the built gdm binary against real NBD clients: nbdinfo,
// nbdcopy, qemu-io, qemu-img, fio, nbdfuse and mkfs, Prometheus, and the
// kernel's nbd-client in a qemu VM.
package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/loopport"
	"github.com/gdm-project/gdm/internal/testkit"
)

// gdmBin is the binary under test, built once by TestMain.
var gdmBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gdm-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gdmBin = filepath.Join(dir, "gdm")
	build := exec.Command("go", "build", "-o", gdmBin, "../cmd/gdm")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building gdm:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a gdm serve process.
type daemon struct {
	t        testing.TB
	dir      string
	state    string
	control  string
	nbdSock  string
	tcp      string
	metrics  string
	cmd      *exec.Cmd
	log      *lockedBuffer // the daemon writes it while tests read it
	exited   chan struct{}
	extraArg []string
}

// freePort is a loopback address for a server the test starts, never one
// handed out before in this run (loopport says why).
func freePort(t testing.TB) string {
	addr, err := loopport.Free()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startDaemon starts gdm serve with its state in dir (a new temp dir if "").
func startDaemon(t testing.TB, dir string, extra ...string) *daemon {
	t.Helper()
	d := newTestDaemon(t, dir, extra...)
	d.start()
	t.Cleanup(d.stop)
	return d
}

// newTestDaemon sets up a daemon without starting it, for a test to change
// its addresses first (a tcp of "" passes no --nbd-listen at all).
func newTestDaemon(t testing.TB, dir string, extra ...string) *daemon {
	if dir == "" {
		dir = t.TempDir()
	}
	return &daemon{t: t, dir: dir, state: filepath.Join(dir, "state"), control: filepath.Join(dir, "control.sock"),
		nbdSock: filepath.Join(dir, "nbd.sock"), tcp: freePort(t), metrics: freePort(t), extraArg: extra}
}

func (d *daemon) start() {
	d.t.Helper()
	args := []string{"serve", "--state-dir", d.state, "--control", d.control, "--nbd-socket", d.nbdSock,
		"--metrics-listen", d.metrics, "--log-level", "warn"}
	if d.tcp != "" {
		args = append(args, "--nbd-listen", d.tcp)
	}
	args = append(args, d.extraArg...)
	d.cmd = exec.Command(gdmBin, args...)
	d.log = &lockedBuffer{}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", d.control); err == nil {
			c.Close()
			return
		}
		select {
		case <-d.exited:
			d.t.Fatalf("gdm serve exited at start: %s", d.log)
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("gdm serve did not come up: %s", d.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the daemon with SIGTERM and checks it exits 0.
func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		if code := d.cmd.ProcessState.ExitCode(); code != 0 {
			d.t.Errorf("gdm serve exited %d after SIGTERM: %s", code, d.log)
		}
	case <-time.After(60 * time.Second):
		d.cmd.Process.Kill()
		d.t.Errorf("gdm serve did not stop on SIGTERM: %s", d.log)
	}
}

// kill9 ends the daemon with SIGKILL.
func (d *daemon) kill9() {
	d.cmd.Process.Kill()
	<-d.exited
}

// gdm runs a verb against this daemon; it must succeed.
func (d *daemon) gdm(args ...string) string {
	d.t.Helper()
	out, err := d.try(args...)
	if err != nil {
		d.t.Fatalf("gdm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (d *daemon) try(args ...string) (string, error) {
	cmd := exec.Command(gdmBin, args...)
	cmd.Env = append(os.Environ(), "GDM_CONTROL="+d.control)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *daemon) uri(name string) string { return "nbd+unix:///" + name + "?socket=" + d.nbdSock }

func (d *daemon) tcpURI(name string) string { return "nbd://" + d.tcp + "/" + name }

// run runs a client program that must succeed, and returns its output.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testkit.NeedTool(t, name), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lockedBuffer is a bytes.Buffer safe to read while a process's output is
// being copied into it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
