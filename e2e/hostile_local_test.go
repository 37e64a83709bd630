package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// Hostile local users: gdm serve runs as root, and another user of the
// machine (here nobody, uid 65534) tries to borrow its privileges through
// the demo's temp dir, the control socket's creation, or a backing path.

const nobody = 65534

// needRootAndSetpriv skips (loudly) unless the test runs as root with
// setpriv, as it does in CI, where GDM_REQUIRE_TOOLS makes it fail instead.
func needRootAndSetpriv(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testkit.SkipOrFail(t, "the hostile-local tests need root to act as two users; run them as root")
	}
	testkit.NeedTool(t, "setpriv")
}

// asNobodyCmd is argv run as uid/gid 65534 with no supplementary groups.
func asNobodyCmd(argv ...string) *exec.Cmd {
	args := append([]string{fmt.Sprintf("--reuid=%d", nobody), fmt.Sprintf("--regid=%d", nobody), "--clear-groups"}, argv...)
	return exec.Command("setpriv", args...)
}

// asNobody runs a shell script as nobody; it must succeed.
func asNobody(t *testing.T, script string) {
	t.Helper()
	if out, err := asNobodyCmd("sh", "-euc", script).CombinedOutput(); err != nil {
		t.Fatalf("as nobody: %s: %v\n%s", script, err, out)
	}
}

// publicDir is a new root-owned directory with the given mode (0755: nobody
// may look in; 01777: like /tmp), removed at the end.
func publicDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gdm-hostile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rootSecret is a root-only file (0600 in a 0700 dir) of size bytes of a
// pattern; the returned func checks it is still exactly that.
func rootSecret(t *testing.T, size int) (dir, path string, unchanged func()) {
	t.Helper()
	dir = t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "secret.img")
	want := bytes.Repeat([]byte("ROOTONLY"), size/8)
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, path, func() {
		t.Helper()
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("the root-only file %s changed: %d bytes (want %d), err %v", path, len(got), len(want), err)
		}
	}
}

// gdmEnv is the environment without a GDM_CONTROL that would point the
// daemon or a verb somewhere else.
func gdmEnv(extra ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GDM_CONTROL=") && !strings.HasPrefix(e, "TMPDIR=") {
			env = append(env, e)
		}
	}
	return append(env, extra...)
}

// (1) Another user made $TMPDIR/gdm-demo first, with a leg that is a symlink
// to a root-only file and a planted state.json naming it: `gdm serve --demo`
// refuses to start, says why, and the root-only file is untouched.
func TestHostileLocalDemoDir(t *testing.T) {
	needRootAndSetpriv(t)
	_, secret, unchanged := rootSecret(t, 4096)
	state := fmt.Sprintf(`{"version":1,"devices":[{"name":"planted","uuid":"u","live_table":"0 8 linear %s 0\n"}]}`, secret)
	plant := fmt.Sprintf("mkdir -p \"$D/demo\"; ln -s %s \"$D/demo/leg0.img\"; printf '%%s' '%s' > \"$D/state.json\"", secret, state)
	cases := []struct {
		name, want string
		setup      func(parent, demo string)
	}{
		{"made-by-nobody", "is owned by uid 65534", func(_, demo string) {
			asNobody(t, "D="+demo+"; mkdir -m 0755 \"$D\"; "+plant)
		}},
		{"world-writable", "is group- or other-writable", func(_, demo string) {
			if err := os.Mkdir(demo, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(demo, 0o777); err != nil {
				t.Fatal(err)
			}
			asNobody(t, "D="+demo+"; "+plant)
		}},
		{"symlink-to-nobodys-dir", "is a symlink", func(parent, demo string) {
			asNobody(t, "D="+parent+"/mine; mkdir -m 0700 \"$D\"; "+plant+"; ln -s \"$D\" "+demo)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent := publicDir(t, 0o1777)
			demo := filepath.Join(parent, "gdm-demo")
			c.setup(parent, demo)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, gdmBin, "serve", "--demo", "--nbd-listen=", "--metrics-listen=")
			cmd.Env = gdmEnv("TMPDIR=" + parent)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("gdm serve --demo started in a directory nobody made (killed after 60s):\n%s", out)
			}
			// The state dir itself is refused, before its state.json is read.
			if err == nil || !strings.Contains(string(out), "not a private directory") || !strings.Contains(string(out), demo+" "+c.want) {
				t.Fatalf("gdm serve --demo: %v\n%s\nwant a refusal saying %s %s", err, out, demo, c.want)
			}
			unchanged()
		})
	}
}

// connLoopSrc is a client run as nobody: it connects to a UNIX socket path
// as fast as it can, from before the daemon starts until its stdin closes
// (then 1000 more tries), bounded by count and time, and reports how each
// attempt ended. Raw syscalls keep each attempt to a few microseconds, so a
// socket that ever sat at the path with a loose mode has a fair chance of
// being caught.
const connLoopSrc = `package main

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	path := os.Args[1]
	var stop atomic.Bool
	go func() { io.Copy(io.Discard, os.Stdin); stop.Store(true) }()
	var connected, eacces, enoent, refused, other, after int
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < 100000000; i++ {
		fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			fmt.Println("socket:", err)
			os.Exit(2)
		}
		err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: path})
		syscall.Close(fd)
		switch err {
		case nil:
			connected++
		case syscall.EACCES:
			eacces++
		case syscall.ENOENT:
			enoent++
		case syscall.ECONNREFUSED:
			refused++
		default:
			other++
		}
		if i == 0 {
			fmt.Println("looping")
		}
		if stop.Load() {
			if after++; after >= 1000 {
				break
			}
		}
		if i%1024 == 0 && time.Now().After(deadline) {
			break
		}
	}
	fmt.Printf("connected=%d eacces=%d enoent=%d refused=%d other=%d\n", connected, eacces, enoent, refused, other)
}
`

var connLoop struct {
	once sync.Once
	path string
	err  error
}

// connLoopBinary builds connLoopSrc once, into a directory nobody can read.
func connLoopBinary(t *testing.T) string {
	t.Helper()
	connLoop.once.Do(func() {
		dir, err := os.MkdirTemp("", "gdm-connloop-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "main.go"), []byte(connLoopSrc), 0o644)
		}
		if err != nil {
			connLoop.err = err
			return
		}
		connLoop.path = filepath.Join(dir, "connloop")
		build := exec.Command("go", "build", "-o", connLoop.path, filepath.Join(dir, "main.go"))
		if out, err := build.CombinedOutput(); err != nil {
			connLoop.err = fmt.Errorf("building the connect loop: %v\n%s", err, out)
		}
	})
	if connLoop.err != nil {
		t.Fatal(connLoop.err)
	}
	return connLoop.path
}

// readyWriter collects a process's output and closes ready when a line
// containing marker has been written.
type readyWriter struct {
	lockedBuffer
	marker string
	ready  chan struct{}
	once   sync.Once
}

func (w *readyWriter) Write(p []byte) (int, error) {
	n, err := w.lockedBuffer.Write(p)
	if strings.Contains(w.String(), w.marker) {
		w.once.Do(func() { close(w.ready) })
	}
	return n, err
}

// startUmask0 starts gdm serve under umask 000 with its control socket at
// control, and returns once it has logged that it serves.
func startUmask0(t *testing.T, dir, control string) (*daemon, *readyWriter) {
	t.Helper()
	d := &daemon{t: t, dir: dir, state: filepath.Join(dir, "state"), control: control,
		nbdSock: filepath.Join(dir, "nbd.sock"), tcp: freePort(t), metrics: freePort(t), log: &lockedBuffer{}}
	d.cmd = exec.Command("sh", "-c", `umask 000; exec "$0" "$@"`, gdmBin, "serve", "--state-dir", d.state,
		"--control", d.control, "--nbd-socket", d.nbdSock, "--nbd-listen", d.tcp, "--metrics-listen", d.metrics, "--log-level", "info")
	d.cmd.Env = gdmEnv()
	out := &readyWriter{marker: "gdm serving", ready: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.stop)
	select {
	case <-out.ready:
	case <-d.exited:
		t.Fatalf("gdm serve exited at start: %s", out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("gdm serve did not come up in 30s: %s", out.String())
	}
	return d, out
}

// (2) Under umask 000, an unprivileged process that connects to the control
// path in a tight loop, from before the daemon starts until after it is up,
// never gets a connection: the socket never sits at its path with the
// umask's mode. Several rounds, since the window this guards against (a
// chmod after listen) is short.
func TestHostileLocalControlSocketUmask(t *testing.T) {
	needRootAndSetpriv(t)
	loop := connLoopBinary(t)
	pub := publicDir(t, 0o755)
	control := filepath.Join(pub, "control.sock")
	for round := range 10 {
		attacker := asNobodyCmd(loop, control)
		stdin, err := attacker.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := attacker.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		attacker.Stderr = os.Stderr
		if err := attacker.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() || lines.Text() != "looping" {
			attacker.Process.Kill()
			t.Fatalf("round %d: the connect loop did not start: %q %v", round, lines.Text(), lines.Err())
		}

		d, _ := startUmask0(t, pub, control)
		d.gdm("ls") // root connects
		fi, err := os.Lstat(control)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("round %d: control socket %v %v; want mode 0600", round, fi.Mode(), err)
		}

		stdin.Close()
		if !lines.Scan() {
			t.Fatalf("round %d: no report from the connect loop: %v", round, lines.Err())
		}
		report := lines.Text()
		io.Copy(io.Discard, stdout)
		if err := attacker.Wait(); err != nil {
			t.Fatalf("round %d: connect loop: %v (%s)", round, err, report)
		}
		var connected, eacces, enoent, refused, other int
		if _, err := fmt.Sscanf(report, "connected=%d eacces=%d enoent=%d refused=%d other=%d",
			&connected, &eacces, &enoent, &refused, &other); err != nil {
			t.Fatalf("round %d: report %q: %v", round, report, err)
		}
		t.Logf("round %d: %s", round, report)
		if connected != 0 {
			t.Fatalf("round %d: nobody connected to the root daemon's control socket %d times (%s)", round, connected, report)
		}
		if eacces == 0 {
			t.Fatalf("round %d: the loop never met the finished socket (%s): it proves nothing", round, report)
		}
		d.stop()
	}
}

// (3) A backing file that its owner (nobody) replaces, while the daemon is
// down, by a symlink to a root-only file: at restart the daemon does not
// open the root-only file; the device is reported broken with the reason,
// and the daemon serves the rest.
//
// This depends on the daemon's wiring, which is not in this package: the
// daemon records each table's targets.Identity when it is loaded, keeps them
// in state.json, passes them back as OpenOptions.Expect at restore, and
// marks a device it cannot restore as broken instead of refusing to start.
func TestHostileLocalBackingReplacedBeforeRestart(t *testing.T) {
	needRootAndSetpriv(t)
	secretDir, secret, unchanged := rootSecret(t, 8<<20)
	pub := publicDir(t, 0o755)
	user := filepath.Join(pub, "user")
	if err := os.Mkdir(user, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(user, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(user, "a.img")
	asNobody(t, "truncate -s 4M "+img)
	other := testkit.Sparse(t, t.TempDir(), "other.img", 1<<20)

	d := startDaemon(t, "")
	d.gdm("create", "victim", "--table", "0 8192 linear "+img+" 0")
	d.gdm("create", "bystander", "--table", "0 2048 linear "+other+" 0")
	d.stop()
	asNobody(t, "ln -s "+secret+" "+img+".new; mv -f "+img+".new "+img)
	d.start()

	if open := testkit.OpenUnder(t, d.cmd.Process.Pid, secretDir); len(open) != 0 {
		t.Fatalf("after restart the daemon has the root-only file open through nobody's symlink: %v", open)
	}
	ls := d.gdm("ls")
	if !strings.Contains(ls, "victim") || !strings.Contains(ls, "bystander") {
		t.Fatalf("gdm ls after restart:\n%s\nwant both devices listed (victim as broken)", ls)
	}
	info, _ := d.try("info", "victim")
	status, _ := d.try("status", "victim")
	d.stop()
	said := ls + info + status + d.log.String()
	if !strings.Contains(said, "replaced since the table was loaded") {
		t.Errorf("nothing says why victim is broken:\nls: %s\ninfo: %s\nstatus: %s\nlog: %s", ls, info, status, d.log)
	}
	unchanged()
}

// (4) A FIFO as a backing path: create fails at once with an error naming
// the FIFO, and the daemon keeps answering. Read-only (an O_RDONLY open of a
// FIFO blocks until a writer comes) and through a symlink as well.
func TestHostileLocalFifoBacking(t *testing.T) {
	needRootAndSetpriv(t)
	d := startDaemon(t, "")
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.img")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		ro   bool
	}{{fifo, false}, {fifo, true}, {link, true}} {
		args := []string{"create", "f", "--table", "0 8 linear " + c.path + " 0"}
		if c.ro {
			args = append(args, "--read-only")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		cmd := exec.CommandContext(ctx, gdmBin, args...)
		cmd.Env = gdmEnv("GDM_CONTROL=" + d.control)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		cancel()
		if err == nil {
			t.Fatalf("gdm %s: succeeded", strings.Join(args, " "))
		}
		if took > 5*time.Second {
			t.Fatalf("gdm %s: took %v to fail: %s", strings.Join(args, " "), took, out)
		}
		if !strings.Contains(string(out), c.path) || !strings.Contains(string(out), "is a FIFO") {
			t.Fatalf("gdm %s: %s\nwant an error naming %s as a FIFO", strings.Join(args, " "), out, c.path)
		}
		if ls := d.gdm("ls"); !strings.Contains(ls, "No devices found") {
			t.Fatalf("gdm ls after the refused create:\n%s", ls)
		}
	}
}
