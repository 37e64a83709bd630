package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// NBD over TLS with real clients: with --tls require, a plain client is
// refused; nbdinfo (libnbd) over the UNIX socket and TCP, qemu-io with
// tls-creds-x509, and fio's nbd engine with an nbds URI and --verify all
// work through TLS; after SIGHUP new sessions get the new certificate.
func TestTLSClients(t *testing.T) {
	testkit.NeedTool(t, "nbdinfo")
	a, b := testkit.NewTLSCerts(t), testkit.NewTLSCerts(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	a.InstallServer(t, cert, key)
	d := startDaemon(t, "", "--tls", "require", "--tls-cert", cert, "--tls-key", key)
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 16<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	d.gdm("create", "sec", "--table", "0 32768 linear "+img+" 0")

	if out, err := exec.Command("nbdinfo", d.uri("sec")).CombinedOutput(); err == nil {
		t.Fatalf("nbdinfo without TLS got in:\n%s", out)
	}
	secure := "nbds+unix:///sec?socket=" + d.nbdSock
	for _, uri := range []string{secure + "&tls-certificates=" + a.Dir, "nbds://" + d.tcp + "/sec?tls-certificates=" + a.Dir} {
		out := run(t, "nbdinfo", uri)
		if !strings.Contains(out, "with TLS") || !strings.Contains(out, "export-size: 16777216") {
			t.Fatalf("nbdinfo %s:\n%s", uri, out)
		}
	}

	run(t, "qemu-io", "--object", "tls-creds-x509,id=t0,dir="+a.Dir+",endpoint=client", "--image-opts",
		"driver=nbd,server.type=unix,server.path="+d.nbdSock+",export=sec,tls-creds=t0,tls-hostname=localhost",
		"-c", "write -P 0xab 4096 64k")
	got, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[4096:4096+65536], bytes.Repeat([]byte{0xab}, 65536)) || got[4095] != 0 {
		t.Fatal("qemu-io's write through TLS did not land in the backing file")
	}

	// libnbd reads a certificate directory given in the URI only where the
	// program allows it, which fio does not: it finds the default one
	// under $HOME.
	home := t.TempDir()
	if err := os.CopyFS(filepath.Join(home, ".pki", "libnbd"), os.DirFS(a.Dir)); err != nil {
		t.Fatal(err)
	}
	fio := exec.Command(testkit.NeedTool(t, "fio"), "--name=tls", "--ioengine=nbd", "--uri="+secure, "--rw=randwrite",
		"--bs=4k", "--size=8M", "--iodepth=8", "--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0", "--output-format=json")
	fio.Env = append(os.Environ(), "HOME="+home)
	if out, err := fio.CombinedOutput(); err != nil || !strings.Contains(string(out), `"error" : 0`) {
		t.Fatalf("fio --verify through TLS: %v\n%s", err, out)
	}

	if n := metric(t, d, "gdm_nbd_tls_sessions_total"); n < 4 {
		t.Fatalf("gdm_nbd_tls_sessions_total %v after four TLS clients", n)
	}

	// libnbd checks the server's certificate only where it has a host
	// name to check it against: over TCP, not over a UNIX socket.
	tcp := "nbds://" + d.tcp + "/sec?tls-certificates="
	b.InstallServer(t, cert, key)
	d.cmd.Process.Signal(syscall.SIGHUP)
	testkit.WaitFor(t, 20*time.Second, "the new certificate served after SIGHUP", func() bool {
		return exec.Command("nbdinfo", tcp+b.Dir).Run() == nil
	})
	if out, err := exec.Command("nbdinfo", tcp+a.Dir).CombinedOutput(); err == nil {
		t.Fatalf("the old certificate still served after SIGHUP:\n%s", out)
	}
}

// bench/tls.sh runs: one short round, every job a figure for gdm and
// nbdkit, plain and TLS.
func TestTLSBenchRuns(t *testing.T) {
	for _, tool := range []string{"fio", "nbdkit", "openssl"} {
		testkit.NeedTool(t, tool)
	}
	checkRoundTable(t, "bench/tls.sh", 4)
}

// checkRoundTable runs a bench script for one short round (arguments 1 1)
// and checks its table: four job rows of round 1, each with figures
// (positive numbers, a trailing % allowed) in every column after the
// round's.
func checkRoundTable(t *testing.T, script string, figures int) {
	t.Helper()
	cmd := exec.Command("bash", script, "1", "1")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	rows := 0
	for _, line := range strings.Split(string(out), "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 2+figures || cells[1] != "1" {
			continue
		}
		rows++
		for _, c := range cells[2:] {
			if n, err := strconv.Atoi(strings.TrimSuffix(c, "%")); err != nil || n <= 0 {
				t.Errorf("job %s: figure %q", cells[0], c)
			}
		}
	}
	if rows != 4 {
		t.Fatalf("%d job rows, want 4:\n%s", rows, out)
	}
}
