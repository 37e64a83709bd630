package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// NBD wire constants the hostile clients need (the spec's values; the
// server's own are unexported).
const (
	nbdOptMagic      = 0x49484156454F5054 // "IHAVEOPT"
	nbdReqMagic      = 0x25609513
	nbdOptExportName = 1
	nbdCmdRead       = 0
	nbdCmdWrite      = 1
	nbdFlagFixed     = 1
	nbdFlagNoZeroes  = 2
)

// hostileDevice creates a 64 MiB linear device named name on d.
func hostileDevice(t *testing.T, d *daemon, name string) {
	t.Helper()
	img := testkit.Sparse(t, t.TempDir(), name+".img", 64<<20)
	d.gdm("create", name, "--table", fmt.Sprintf("0 %d linear %s 0", 64<<11, img))
}

// nbdGreeting reads the server's 18-byte newstyle greeting.
func nbdGreeting(c net.Conn) error {
	var g [18]byte
	_, err := io.ReadFull(c, g[:])
	return err
}

// nbdAttach negotiates export name over c with EXPORT_NAME and no zeroes.
func nbdAttach(c net.Conn, name string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if err := nbdGreeting(c); err != nil {
		return err
	}
	b := binary.BigEndian.AppendUint32(nil, nbdFlagFixed|nbdFlagNoZeroes)
	b = binary.BigEndian.AppendUint64(b, nbdOptMagic)
	b = binary.BigEndian.AppendUint32(b, nbdOptExportName)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	if _, err := c.Write(b); err != nil {
		return err
	}
	var r [10]byte // size and transmission flags
	_, err := io.ReadFull(c, r[:])
	return err
}

// dialNBD connects to d's TCP listener and attaches to export name.
func dialNBD(t *testing.T, d *daemon, name string) *net.TCPConn {
	t.Helper()
	return dialAttached(t, "tcp", d.tcp, name).(*net.TCPConn)
}

// dialNBDUnix connects to d's UNIX socket and attaches to export name.
func dialNBDUnix(t *testing.T, d *daemon, name string) *net.UnixConn {
	t.Helper()
	return dialAttached(t, "unix", d.nbdSock, name).(*net.UnixConn)
}

// dialAttached connects to addr and attaches to export name.
func dialAttached(t *testing.T, network, addr, name string) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := nbdAttach(c, name); err != nil {
		c.Close()
		t.Fatalf("attach %s: %v", name, err)
	}
	return c
}

func nbdRequest(typ uint16, cookie, off uint64, length uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, nbdReqMagic)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, cookie)
	b = binary.BigEndian.AppendUint64(b, off)
	return binary.BigEndian.AppendUint32(b, length)
}

// nbdReadOK reads 4 KiB at 0 over an attached connection and checks the
// simple reply.
func nbdReadOK(c net.Conn) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(nbdRequest(nbdCmdRead, 7, 0, 4096)); err != nil {
		return err
	}
	var rep [16 + 4096]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return err
	}
	if e := binary.BigEndian.Uint32(rep[4:]); e != 0 || binary.BigEndian.Uint64(rep[8:]) != 7 {
		return fmt.Errorf("read reply: error %d cookie %d", e, binary.BigEndian.Uint64(rep[8:]))
	}
	return nil
}

// reset closes c with SO_LINGER 0: the kernel sends RST and drops
// whatever is unread or unsent.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// healthy checks the daemon still runs, answers the control API, and
// serves a fresh NBD client.
func healthy(t *testing.T, d *daemon, name string) {
	t.Helper()
	select {
	case <-d.exited:
		t.Fatalf("gdm serve died: %s", d.log)
	default:
	}
	if out, err := d.try("ls"); err != nil || !strings.Contains(out, name) {
		t.Fatalf("gdm ls: %v\n%s\ndaemon log: %s", err, out, d.log)
	}
	c := dialNBD(t, d, name)
	defer c.Close()
	if err := nbdReadOK(c); err != nil {
		t.Fatalf("fresh client: %v\ndaemon log: %s", err, d.log)
	}
}

// metric scrapes d's /metrics and returns the value of the first series
// whose name and labels start with series (e.g. `go_goroutines` or
// `gdm_nbd_connections_refused_total{reason="global"}`); -1 if absent.
func metric(t *testing.T, d *daemon, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, series+" ") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[len(series):]), 64)
		if err != nil {
			t.Fatalf("metric %s: %v", line, err)
		}
		return v
	}
	return -1
}

// fds counts the daemon's open file descriptors.
func fds(t *testing.T, d *daemon) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// rssBytes is the daemon's resident set size (VmRSS).
func rssBytes(t *testing.T, d *daemon) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// baseline is the daemon's fds and goroutines at rest.
type baseline struct{ fds, goroutines int }

func measure(t *testing.T, d *daemon) baseline {
	return baseline{fds: fds(t, d), goroutines: int(metric(t, d, "go_goroutines"))}
}

// backToBaseline waits until fds and goroutines are back near b (a
// little slack for the scrape's own connection and Go's helpers).
func backToBaseline(t *testing.T, d *daemon, b baseline) {
	t.Helper()
	testkit.WaitForValue(t, 30*time.Second, "fds and goroutines back to baseline", func() (bool, string) {
		now := measure(t, d)
		return now.fds <= b.fds+2 && now.goroutines <= b.goroutines+3, fmt.Sprintf("now %+v, baseline %+v", now, b)
	})
}
