package e2e

import (
	"bytes"
	"fmt"
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

// remoteHost is a gdm serving one device, vol, inside a network
// namespace of the test's own: a host of its own, reachable from the test
// only over a veth pair at addr.
type remoteHost struct {
	t       *testing.T
	ns      string
	addr    string
	dir     string
	backing string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// newRemoteHost makes namespace ns with 10.231.i.2 inside and 10.231.i.1
// on the test's side, and starts its gdm. Everything goes at cleanup.
func newRemoteHost(t *testing.T, i int, size int64) *remoteHost {
	t.Helper()
	ns := fmt.Sprintf("gdmt%d-%d", os.Getpid()%100000, i)
	outer, inner := fmt.Sprintf("gdmh%d-%d", os.Getpid()%10000, i), fmt.Sprintf("gdmn%d-%d", os.Getpid()%10000, i)
	h := &remoteHost{t: t, ns: ns, addr: fmt.Sprintf("10.231.%d.2", i), dir: t.TempDir()}
	t.Cleanup(func() {
		h.kill()
		exec.Command("ip", "link", "del", outer).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"link", "add", outer, "type", "veth", "peer", "name", inner},
		{"link", "set", inner, "netns", ns},
		{"addr", "add", fmt.Sprintf("10.231.%d.1/24", i), "dev", outer},
		{"link", "set", outer, "up"},
		{"netns", "exec", ns, "ip", "addr", "add", h.addr + "/24", "dev", inner},
		{"netns", "exec", ns, "ip", "link", "set", inner, "up"},
		{"netns", "exec", ns, "ip", "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			testkit.SkipOrFail(t, "ip %s: %v: %s (network namespaces need root)", strings.Join(args, " "), err, out)
		}
	}
	h.backing = testkit.Sparse(t, h.dir, "vol.img", size)
	h.start()
	h.gdm("create", "vol", "--table", fmt.Sprintf("0 %d linear %s 0", size/512, h.backing))
	return h
}

// start runs the host's gdm serve in its namespace, on its state dir, and
// waits for its control socket to answer.
func (h *remoteHost) start() {
	h.t.Helper()
	ctl := filepath.Join(h.dir, "control.sock")
	h.cmd = exec.Command("ip", "netns", "exec", h.ns, gdmBin, "serve", "--state-dir", filepath.Join(h.dir, "state"),
		"--control", ctl, "--nbd-socket", "", "--nbd-listen", h.addr+":10809", "--metrics-listen", "", "--log-level", "warn")
	var log bytes.Buffer
	h.cmd.Stdout, h.cmd.Stderr = &log, &log
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(h.cmd, h.exited)
	testkit.WaitFor(h.t, 20*time.Second, "gdm serve in "+h.ns, func() bool {
		c, err := net.Dial("unix", ctl)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// kill ends the host's gdm with SIGKILL (ip netns exec runs it in place).
func (h *remoteHost) kill() {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	h.cmd.Process.Signal(syscall.SIGKILL)
	<-h.exited
	h.cmd = nil
}

func (h *remoteHost) gdm(args ...string) {
	h.t.Helper()
	cmd := exec.Command(gdmBin, args...)
	cmd.Env = append(os.Environ(), "GDM_CONTROL="+filepath.Join(h.dir, "control.sock"))
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("gdm %s in %s: %v\n%s", strings.Join(args, " "), h.ns, err, out)
	}
}

func (h *remoteHost) uri() string { return "nbd://" + h.addr + ":10809/vol?timeout=2s" }

// qemuIO runs qemu-io commands on a device of the test's gdm; ok says
// whether they must succeed or fail.
func qemuIO(t *testing.T, d *daemon, name string, ok bool, cmds ...string) string {
	t.Helper()
	args := []string{"--image-opts", "driver=nbd,server.type=unix,server.path=" + d.nbdSock + ",export=" + name}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command(testkit.NeedTool(t, "qemu-io"), args...).CombinedOutput()
	failed := err != nil || strings.Contains(string(out), "failed")
	if failed == ok {
		t.Fatalf("qemu-io %s on %s (want ok %v): %v\n%s", strings.Join(cmds, "; "), name, ok, err, out)
	}
	return string(out)
}

// A striped table over three hosts, each a gdm in a network namespace of
// the test's own, equals the same table over local files byte for byte
// after the same writes; fio verifies through it. When one host's server
// is killed, I/O to its legs fails with EIO and I/O to the others goes on,
// its leg shows D; once the server is back the leg works again by itself.
func TestStripedOverHosts(t *testing.T) {
	testkit.NeedTool(t, "ip")
	fio := testkit.NeedTool(t, "fio")
	const legSize = 8 << 20
	var hosts []*remoteHost
	for i := 1; i <= 3; i++ {
		hosts = append(hosts, newRemoteHost(t, i, legSize))
	}
	d := startDaemon(t, "")
	local := t.TempDir()
	remote, here := "0 49152 striped 3 128", "0 49152 striped 3 128"
	for i, h := range hosts {
		remote += " " + h.uri() + " 0"
		here += " " + testkit.Sparse(t, local, fmt.Sprintf("leg%d.img", i), legSize) + " 0"
	}
	d.gdm("create", "wide", "--table", remote)
	d.gdm("create", "here", "--table", here)

	script := []string{"write -P 0x11 0 1M", "write -P 0x22 70k 300k", "write -P 0x33 5000k 1500k", "write -z 100k 64k", "write -P 0x44 23k 1k"}
	for _, name := range []string{"wide", "here"} {
		qemuIO(t, d, name, true, script...)
	}
	dir := t.TempDir()
	for _, name := range []string{"wide", "here"} {
		run(t, "nbdcopy", d.uri(name), filepath.Join(dir, name+".img"))
	}
	a, _ := os.ReadFile(filepath.Join(dir, "wide.img"))
	b, _ := os.ReadFile(filepath.Join(dir, "here.img"))
	if len(a) != 24<<20 || !bytes.Equal(a, b) {
		t.Fatalf("the table over three hosts reads other bytes than over local files (%d and %d bytes)", len(a), len(b))
	}

	out, err := exec.Command(fio, "--name=hosts", "--ioengine=nbd", "--uri="+d.uri("wide"), "--rw=randwrite", "--bs=4k-64k",
		"--size=16M", "--iodepth=8", "--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0", "--output-format=json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"error" : 0`) {
		t.Fatalf("fio --verify over three hosts: %v\n%s", err, out)
	}

	// Host 2 dies under fio: fio ends (its writes to that leg fail), it
	// does not hang.
	writes := `gdm_device_io_operations_total{device="wide",op="write"}`
	before := metric(t, d, writes)
	bg := exec.Command(fio, "--name=kill", "--ioengine=nbd", "--uri="+d.uri("wide"), "--rw=randwrite", "--bs=4k",
		"--size=16M", "--iodepth=8", "--time_based", "--runtime=5", "--continue_on_error=all")
	if err := bg.Start(); err != nil {
		t.Fatal(err)
	}
	fioDone := make(chan error, 1)
	go func() { fioDone <- bg.Wait() }()
	testkit.WaitFor(t, 30*time.Second, "fio writing", func() bool { return metric(t, d, writes) > before+100 })
	hosts[1].kill()
	select {
	case err := <-fioDone:
		t.Logf("fio after the kill: %v", err)
	case <-time.After(2 * time.Minute):
		bg.Process.Kill()
		t.Fatal("fio hung after a host died")
	}

	// Chunk k (64 KiB) is on leg k%3: 0-64k on host 1, 64k-128k on host 2.
	start := time.Now()
	qemuIO(t, d, "wide", false, "read 64k 4k")
	qemuIO(t, d, "wide", true, "read 0 4k", "write -P 0x55 128k 4k")
	t.Logf("a read of the dead host's leg failed after %v", time.Since(start).Round(time.Millisecond))
	testkit.WaitFor(t, 20*time.Second, "the dead host's leg D in status", func() bool {
		return strings.HasSuffix(strings.TrimSpace(d.gdm("status", "wide")), " 1 ADA")
	})
	hosts[1].start()
	testkit.WaitFor(t, 30*time.Second, "the leg back by itself", func() bool {
		args := []string{"--image-opts", "driver=nbd,server.type=unix,server.path=" + d.nbdSock + ",export=wide", "-c", "write -P 0x66 64k 4k", "-c", "read -P 0x66 64k 4k"}
		out, err := exec.Command("qemu-io", args...).CombinedOutput()
		return err == nil && !strings.Contains(string(out), "failed")
	})
}

// bench/remote.sh runs: one short round, every job a figure for the
// direct device and the leg over another gdm, and their ratio.
func TestRemoteBenchRuns(t *testing.T) {
	testkit.NeedTool(t, "fio")
	checkRoundTable(t, "bench/remote.sh", 3)
}
