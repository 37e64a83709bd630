package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// Legs served by NBD servers other than gdm: qemu-nbd with TLS, nbd-server
// (plain, on a UNIX socket) and nbdkit with --tls=require. For each, a gdm
// table puts a leg on the export, random bytes written through gdm read
// back the same through gdm and are, byte for byte, in the file the server
// serves, where the table puts them; and a leg that trusts another CA, or
// asks a TLS-only server for plain text, is refused at load, saying why.

// peerServer is an NBD server program the test started, killed at cleanup.
type peerServer struct {
	cmd    *exec.Cmd
	log    *lockedBuffer
	exited chan struct{}
}

// kill ends the server with SIGKILL and waits for it.
func (s *peerServer) kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

// startServer runs prog and waits (20 s at most) until ready holds; a
// server that exits first fails the test with its output.
func startServer(t *testing.T, name string, ready func() bool, prog string, args ...string) *peerServer {
	t.Helper()
	cmd := exec.Command(prog, args...)
	s := &peerServer{cmd: cmd, log: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.kill)
	testkit.WaitFor(t, 20*time.Second, name+" ready", func() bool {
		select {
		case <-s.exited:
			t.Fatalf("%s exited before it was ready: %s\n%s", name, cmd.ProcessState, s.log)
		default:
		}
		return ready()
	})
	return s
}

// unixListening says whether a server accepts connections on sock.
func unixListening(sock string) func() bool { return dialable("unix", sock) }

// tcpListening says whether a server accepts connections at addr.
func tcpListening(addr string) func() bool { return dialable("tcp", addr) }

func dialable(network, addr string) func() bool {
	return func() bool {
		c, err := net.Dial(network, addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
}

// Sizes of the table checkLeg loads: a local file's 4 MiB, then 8 MiB of
// the export from 1 MiB on. The export's file is 16 MiB.
const (
	legLocal  = 4 << 20
	legRemote = 8 << 20
	legOffset = 1 << 20
	legExport = 16 << 20
)

// legTable is checkLeg's table with uri as its second line's device.
func legTable(local, uri string) string {
	return fmt.Sprintf("0 %d linear %s 0\n%d %d linear %s %d",
		legLocal/512, local, legLocal/512, legRemote/512, uri, legOffset/512)
}

// checkLeg makes device name over uri (served from served, a legExport
// bytes file), writes random bytes through gdm with nbdcopy, reads them
// back through gdm and finds them in the local file and in served at the
// offsets the table says, and nothing else in served changed. It returns
// the bytes written.
func checkLeg(t *testing.T, d *daemon, name, uri, served string) []byte {
	t.Helper()
	dir := t.TempDir()
	local := testkit.Sparse(t, dir, "local.img", legLocal)
	d.gdm("create", name, "--table", legTable(local, uri))
	want := make([]byte, legLocal+legRemote)
	rand.Read(want)
	src := filepath.Join(dir, "random.img")
	if err := os.WriteFile(src, want, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "nbdcopy", src, d.uri(name))
	back := filepath.Join(dir, "back.img")
	run(t, "nbdcopy", d.uri(name), back)
	if !bytes.Equal(readFile(t, back), want) {
		t.Fatalf("%s: gdm reads back other bytes than were written", name)
	}
	if !bytes.Equal(readFile(t, local), want[:legLocal]) {
		t.Fatalf("%s: the local leg does not hold the first 4 MiB written", name)
	}
	got := readFile(t, served)
	if len(got) != legExport {
		t.Fatalf("%s: the served file is %d bytes, want %d", name, len(got), legExport)
	}
	if !bytes.Equal(got[legOffset:legOffset+legRemote], want[legLocal:]) {
		t.Fatalf("%s: the served file does not hold the bytes written through gdm at %d", name, legOffset)
	}
	zero := make([]byte, legExport)
	if !bytes.Equal(got[:legOffset], zero[:legOffset]) || !bytes.Equal(got[legOffset+legRemote:], zero[legOffset+legRemote:]) {
		t.Fatalf("%s: bytes outside the leg's range of the served file changed", name)
	}
	return want
}

// refused loads a table over uri that must be refused with an error that
// says why: why matches it.
func refused(t *testing.T, d *daemon, uri, why string) {
	t.Helper()
	local := testkit.Sparse(t, t.TempDir(), "local.img", legLocal)
	start := time.Now()
	out, err := d.try("create", "refused", "--table", legTable(local, uri))
	if err == nil {
		d.gdm("remove", "refused")
		t.Fatalf("a table over %s was loaded:\n%s", uri, out)
	}
	if !regexp.MustCompile(why).MatchString(out) {
		t.Fatalf("the load over %s was refused without saying why (%s):\n%s", uri, why, out)
	}
	t.Logf("refused in %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
}

// caOnly makes a certificate directory with certs' CA and no client
// certificate.
func caOnly(t *testing.T, certs *testkit.TLSCerts) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca-cert.pem"), readFile(t, filepath.Join(certs.Dir, "ca-cert.pem")), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// noClientCert matches the refusal of a TLS client with no certificate by a
// server that verifies peers. GnuTLS (qemu, nbdkit) closes the connection
// after the handshake without an alert, so the server says no more than
// that it hung up (EOF, a reset, or a broken pipe on the next write); the client adds that it gave no certificate.
const noClientCert = `(?i)(EOF|reset by peer|broken pipe|certificate required).*no client certificate was given`

// tlsRequired matches the refusal of a plain client by a server that
// requires TLS: NBD_REP_ERR_TLS_REQD by name, with the fix.
const tlsRequired = `NBD_REP_ERR_TLS_REQD.*name it nbds://`

// qemu-nbd serving a file over TCP on 127.0.0.1 with --tls-creds (x509,
// client certificates verified): an nbds:// leg with tls-certificates.
// Killed, its leg fails reads while the local part still reads; started
// again on the same address, the leg redials, TLS included, by itself.
func TestRemoteLegQemuNbdTLS(t *testing.T) {
	qemuNbd := testkit.NeedTool(t, "qemu-nbd")
	certs, other := testkit.NewTLSCerts(t), testkit.NewTLSCerts(t)
	served := testkit.Sparse(t, t.TempDir(), "served.img", legExport)
	addr := freePort(t)
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"-f", "raw", "-t", "-e", "8", "-x", "vol", "-b", host, "-p", port,
		"--object", "tls-creds-x509,id=tls0,dir=" + certs.Dir + ",endpoint=server,verify-peer=on", "--tls-creds", "tls0", served}
	srv := startServer(t, "qemu-nbd", tcpListening(addr), qemuNbd, args...)
	d := startDaemon(t, "")
	want := checkLeg(t, d, "qemu", "nbds://"+addr+"/vol?tls-certificates="+certs.Dir+"&timeout=5s", served)

	refused(t, d, "nbds://"+addr+"/vol?tls-certificates="+other.Dir, "certificate signed by unknown authority")
	refused(t, d, "nbd://"+addr+"/vol", tlsRequired)
	refused(t, d, "nbds://"+addr+"/vol?tls-certificates="+caOnly(t, certs), noClientCert)

	srv.kill()
	remoteRead := fmt.Sprintf("read %d 64k", legLocal)
	start := time.Now()
	qemuIO(t, d, "qemu", false, remoteRead)
	t.Logf("a read of the leg failed in %v after qemu-nbd was killed", time.Since(start).Round(time.Millisecond))
	qemuIO(t, d, "qemu", true, "read 0 64k")
	startServer(t, "qemu-nbd again", tcpListening(addr), qemuNbd, args...)
	start = time.Now()
	testkit.WaitFor(t, 30*time.Second, "the TLS leg back after qemu-nbd restarted", func() bool {
		cmd := exec.Command("qemu-io", "--image-opts", "driver=nbd,server.type=unix,server.path="+d.nbdSock+",export=qemu", "-c", remoteRead)
		out, err := cmd.CombinedOutput()
		return err == nil && !strings.Contains(string(out), "failed")
	})
	t.Logf("the leg was back %v after qemu-nbd restarted", time.Since(start).Round(time.Millisecond))
	back := filepath.Join(t.TempDir(), "back.img")
	run(t, "nbdcopy", d.uri("qemu"), back)
	if !bytes.Equal(readFile(t, back), want) {
		t.Fatal("after qemu-nbd restarted, gdm reads other bytes than were written")
	}
}

// nbd-server (the NBD project's own server), plain, on a UNIX socket, from
// a config file of the test's. It serves a pool of connections only as a
// daemon (with -d it serves one client and exits), so it runs as one with
// a pid file, and is stopped by that pid.
func TestRemoteLegNbdServer(t *testing.T) {
	dir := t.TempDir()
	served := testkit.Sparse(t, dir, "served.img", legExport)
	sock := filepath.Join(dir, "nbd-server.sock")
	startNbdServer(t, dir, sock, served)
	d := startDaemon(t, "")
	checkLeg(t, d, "nbdserver", "nbd+unix:///vol?socket="+sock+"&timeout=10s", served)

	refused(t, d, "nbd+unix:///nosuch?socket="+sock, `"nosuch".*(?i)unknown`)
}

// startNbdServer starts nbd-server exporting served as "vol" on sock, with
// its config and pid file in dir; at cleanup it is sent SIGTERM (it ends
// its per-client children) and waited for, then SIGKILL.
func startNbdServer(t *testing.T, dir, sock, served string) {
	t.Helper()
	nbdServer := testkit.NeedTool(t, "nbd-server")
	conf, pidFile := filepath.Join(dir, "config"), filepath.Join(dir, "nbd-server.pid")
	// No user/group: it stays the test's user; no includedir: it reads
	// nothing of /etc/nbd-server.
	config := fmt.Sprintf("[generic]\nunixsock = %s\nallowlist = false\n\n[vol]\nexportname = %s\n", sock, served)
	if err := os.WriteFile(conf, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nbdServer, "-C", conf, "-p", pidFile).CombinedOutput(); err != nil {
		t.Fatalf("nbd-server: %v\n%s", err, out)
	}
	var pid int
	testkit.WaitFor(t, 20*time.Second, "nbd-server's pid file", func() bool {
		b, err := os.ReadFile(pidFile)
		n, _ := fmt.Sscan(string(b), &pid)
		return err == nil && n == 1
	})
	t.Cleanup(func() {
		gone := func() bool { return syscall.Kill(pid, 0) != nil }
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 500 && !gone(); i++ {
			time.Sleep(20 * time.Millisecond) // a bounded wait for a process that is not our child
		}
		if !gone() {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("nbd-server %d did not end on SIGTERM within 10 s", pid)
		}
	})
	testkit.WaitFor(t, 20*time.Second, "nbd-server listening", unixListening(sock))
}

// nbdkit --tls=require with client certificates verified, serving a file
// on a UNIX socket: an nbds+unix leg (tls-hostname names the certificate's
// host, as a socket has none).
func TestRemoteLegNbdkitTLS(t *testing.T) {
	nbdkit := testkit.NeedTool(t, "nbdkit")
	certs, other := testkit.NewTLSCerts(t), testkit.NewTLSCerts(t)
	dir := t.TempDir()
	served := testkit.Sparse(t, dir, "served.img", legExport)
	sock := filepath.Join(dir, "nbdkit.sock")
	startServer(t, "nbdkit", unixListening(sock), nbdkit, "-f", "-U", sock, "--tls=require",
		"--tls-certificates="+certs.Dir, "--tls-verify-peer", "file", served)
	d := startDaemon(t, "")
	tls := "nbds+unix:///?socket=" + sock + "&tls-hostname=localhost&timeout=10s&tls-certificates="
	checkLeg(t, d, "nbdkit", tls+certs.Dir, served)

	refused(t, d, tls+other.Dir, "certificate signed by unknown authority")
	refused(t, d, "nbd+unix:///?socket="+sock, tlsRequired)
	refused(t, d, tls+caOnly(t, certs), noClientCert)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
