package oracle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/pkg/nbdclient"
)

// NBDDevices is how many /dev/nbdN the guest's nbd module makes (its
// nbds_max, e2e/oracle_test.go): the oracle attaches gdm's devices at
// /dev/nbd1 up to the last, then from /dev/nbd1 again.
const NBDDevices = 128

// GDM is gdm's daemon in the guest, over its own copies of the disks. Its
// devices reach the block layer through the kernel's nbd client, as users
// attach them: the same O_DIRECT, discard and zero-out calls then go to
// both sides.
type GDM struct {
	Bin     string
	dir     string
	disks   []string
	names   map[string]int
	cmd     *exec.Cmd
	control string
	addr    string
	nbd     map[string]string // device name -> /dev/nbdN it is attached at
	http    *http.Client      // to the control socket
	// noShowKeys is set once `gdm table --showkeys` was refused as an
	// unknown flag: this gdm prints keys in every table.
	noShowKeys bool
}

// StartGDM starts `gdm serve` with its state under dir.
func StartGDM(bin, dir string, disks []string) (*GDM, error) {
	names, err := devNames(disks)
	if err != nil {
		return nil, err
	}
	g := &GDM{Bin: bin, dir: dir, disks: disks, names: names, control: filepath.Join(dir, "control.sock"),
		addr: "127.0.0.1:10809", nbd: map[string]string{}}
	g.http = &http.Client{Timeout: cmdTimeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, "unix", g.control)
		}}}
	g.cmd = exec.Command(bin, "serve", "--state-dir", filepath.Join(dir, "state"), "--control", g.control,
		"--nbd-socket", "", "--nbd-listen", g.addr, "--metrics-listen", "", "--log-level", "warn")
	g.cmd.Stdout, g.cmd.Stderr = os.Stderr, os.Stderr
	// A SIGQUIT (Dump) then prints every goroutine, not the signalled one.
	g.cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	if err := g.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(cmdTimeout)
	for {
		c, err := net.Dial("unix", g.control)
		if err == nil {
			c.Close()
			if err := checkIOFlusher(g.cmd.Process.Pid); err != nil {
				g.Stop()
				return nil, err
			}
			return g, nil
		}
		if time.Now().After(deadline) {
			g.Stop()
			return nil, fmt.Errorf("gdm serve did not come up in %v: %v", cmdTimeout, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a socket that has no event to wait on
	}
}

// Stop ends the daemon.
func (g *GDM) Stop() {
	g.cmd.Process.Signal(unix.SIGTERM)
	done := make(chan struct{})
	go func() { g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cmdTimeout):
		g.cmd.Process.Kill()
		<-done
	}
}

// Dump makes the daemon print every goroutine's stack to the console and
// exit (SIGQUIT): what a case that hangs leaves to find where.
func (g *GDM) Dump() {
	g.cmd.Process.Signal(unix.SIGQUIT)
}

func (g *GDM) Name() string             { return "gdm" }
func (g *GDM) Disks() []string          { return g.disks }
func (g *GDM) DevNames() map[string]int { return g.names }

func (g *GDM) gdm(stdin string, args ...string) (string, error) {
	return run(stdin, []string{"GDM_CONTROL=" + g.control}, g.Bin, args...)
}

// call makes one control API request. Create, load, suspend, resume and
// remove go this way: their output is not compared, and under TCG each
// CLI process costs about a second. Table and status, whose text is
// compared with dmsetup's, go through the CLI as a user sees them.
func (g *GDM) call(method, path string, body any) error {
	var in io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://gdm"+path, in)
	if err != nil {
		return err
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("gdm %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

type tableBody struct {
	Name  string `json:"name,omitempty"`
	Table string `json:"table"`
}

func (g *GDM) Create(name, table string) error {
	return g.call(http.MethodPost, "/v1/devices", tableBody{Name: name, Table: table})
}

func (g *GDM) Reload(name, table string) error {
	return g.call(http.MethodPost, "/v1/devices/"+url.PathEscape(name)+"/load", tableBody{Table: table})
}

func (g *GDM) Suspend(name string) error {
	return g.call(http.MethodPost, "/v1/devices/"+url.PathEscape(name)+"/suspend", nil)
}

func (g *GDM) Resume(name string) error {
	return g.call(http.MethodPost, "/v1/devices/"+url.PathEscape(name)+"/resume", nil)
}

// Remove deletes the device. `nbd-client -d` returns before the daemon has
// seen the connection close, so a remove right after it can find the
// device still busy: it is retried until the connection is gone, within
// cmdTimeout.
func (g *GDM) Remove(name string) error {
	deadline := time.Now().Add(cmdTimeout)
	for {
		err := g.call(http.MethodDelete, "/v1/devices/"+url.PathEscape(name), nil)
		if err == nil || !strings.Contains(err.Error(), "NBD connections are open") || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond) // the daemon has no event to wait on from here
	}
}

// Attach connects /dev/nbdN to the device with the kernel's nbd-client,
// with the logical block size gdm gives the table (see exportBlockSize).
func (g *GDM) Attach(name string, n int) (string, error) {
	dev := "/dev/nbd" + strconv.Itoa(n)
	host, port, _ := net.SplitHostPort(g.addr)
	bs, err := g.exportBlockSize(name)
	if err != nil {
		return "", err
	}
	// -t: a request gdm leaves unanswered fails after 30 s instead of
	// hanging the guest.
	if _, err := run("", nil, "nbd-client", host, port, dev, "-N", name, "-b", strconv.FormatInt(bs, 10), "-t", "30"); err != nil {
		return "", err
	}
	g.nbd[name] = dev
	return dev, nil
}

// exportBlockSize is the logical block size gdm gives the device's
// table, as its export advertises it (the minimum block size: crypt's
// sector_size, a backing disk's 4 KiB blocks), up to a page, which is what
// `gdm attach` gives the kernel. It goes to nbd-client as -b, whatever
// the client's version makes of the handshake's block size; the oracle
// then compares the attached device's logical block size with dm's.
func (g *GDM) exportBlockSize(name string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cl, err := nbdclient.Dial(ctx, nbdclient.Options{Network: "tcp", Address: g.addr, Export: name, MaxConns: 1})
	if err != nil {
		return 0, fmt.Errorf("asking gdm's export %s for its block size: %w", name, err)
	}
	defer cl.Close()
	return min(cl.Info().LogicalBlockSize(), int64(os.Getpagesize())), nil
}

// Stack attaches the device to /dev/nbdN, as for I/O, and gdm's tables
// above it map that block device, as dm's map the dm device below. gdm
// reads and writes it past the page cache (O_DIRECT), so each request is
// answered (or failed) by the device below before the one above is.
// Through the page cache (gdm serve --block-page-cache), a write the
// device below fails succeeded and failed only the next flush, a read
// found what a dropped write left in the cache, and a delayed device
// answered cached reads at once: the oracle showed all three, and stacked
// gdm on its own exports (nbd://ADDR/NAME) until gdm used O_DIRECT.
func (g *GDM) Stack(name string, n int) (string, error) {
	return g.Attach(name, n)
}

func (g *GDM) Detach(name string) error {
	dev, ok := g.nbd[name]
	if !ok {
		return nil
	}
	delete(g.nbd, name)
	_, err := run("", nil, "nbd-client", "-d", dev)
	return err
}

func (g *GDM) Table(name string) (string, error)  { return g.gdm("", "table", name) }
func (g *GDM) Status(name string) (string, error) { return g.gdm("", "status", name) }

// TableKeys is `gdm table --showkeys`, or not ok when this gdm has no
// such flag (it then shows keys in Table).
func (g *GDM) TableKeys(name string) (string, bool, error) {
	if g.noShowKeys {
		return "", false, nil
	}
	out, err := g.gdm("", "table", "--showkeys", name)
	if err != nil && strings.Contains(err.Error(), "showkeys") && strings.Contains(err.Error(), "not defined") {
		g.noShowKeys = true
		return "", false, nil
	}
	return out, true, err
}

// Message is the control API's message call (as `gdm message NAME 0
// WORDS...` makes it, without a CLI process's second under TCG).
func (g *GDM) Message(name string, words []string) error {
	return g.call(http.MethodPost, "/v1/devices/"+url.PathEscape(name)+"/message", controlapi.MessageReq{Sector: 0, Args: words})
}

// majorMinor is how dm names a block device: "254:0".
func majorMinor(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return path, nil // a file (unit tests): its path is its only name
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)), nil
}
