package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/internal/nbdnetlink"
	"github.com/gdm-project/gdm/internal/testkit"
	"golang.org/x/sys/unix"
)

func (td *testDaemon) attach(name string, req controlapi.AttachReq) (controlapi.DeviceInfo, error) {
	var out controlapi.DeviceInfo
	err := controlapi.New(td.control).Call(http.MethodPost, "/v1/devices/"+name+"/attach", nil, req, &out)
	return out, err
}

func (td *testDaemon) detach(target string) error {
	return controlapi.New(td.control).Call(http.MethodPost, "/v1/detach", nil, controlapi.DetachReq{Target: target}, nil)
}

// attachedDevice makes a 1 MiB linear device d over a file and attaches
// it with 4 connections.
func attachedDevice(t *testing.T, td *testDaemon) (controlapi.DeviceInfo, string) {
	t.Helper()
	a := testkit.Sparse(t, td.dir, "a.img", 4<<20)
	td.ok(t, "create", "d", "--table", "0 2048 linear "+a+" 0")
	info, err := td.attach("d", controlapi.AttachReq{Connections: 4, DeadTimeoutSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	return info, a
}

// Attach hands the kernel 4 connections past their handshake, with the
// export's size and flags; the kernel's I/O over them reaches the table;
// ls and info show the attachment; the link names the device.
func TestAttachConnectsTheKernel(t *testing.T) {
	k := &fakeKernel{}
	links := useFakeKernel(t, k)
	td := startTestDaemon(t, "")
	info, a := attachedDevice(t, td)
	at := info.Attached
	if at == nil || at.Device != "/dev/nbd0" || at.Connections != 4 || at.Link != filepath.Join(links, "d") {
		t.Fatalf("attachment %+v", at)
	}
	dev := k.dev(0)
	if len(dev.conns) != 4 || dev.cfg.SizeBytes != 1<<20 || dev.cfg.DeadTimeout.Seconds() != 60 || dev.cfg.Backend == "" {
		t.Fatalf("kernel got %+v with %d sockets", dev.cfg, len(dev.conns))
	}
	want := uint64(nbdnetlink.FlagHasFlags | nbdnetlink.FlagSendFlush | nbdnetlink.FlagSendFUA | nbdnetlink.FlagSendTrim | nbdnetlink.FlagMultiConn)
	if dev.cfg.ServerFlags&want != want || dev.cfg.ServerFlags&nbdnetlink.FlagReadOnly != 0 {
		t.Fatalf("server flags %#x, want %#x set and not read-only", dev.cfg.ServerFlags, want)
	}
	data := bytes.Repeat([]byte("k"), 4096)
	if e, _, err := dev.conns[3].do(1, 8192, 4096, data); e != 0 || err != nil {
		t.Fatalf("kernel write: errno %d, %v", e, err)
	}
	f, _ := os.ReadFile(a)
	if !bytes.Equal(f[8192:8192+4096], data) {
		t.Fatal("the kernel's write did not reach the backing file")
	}
	if target, err := os.Readlink(at.Link); err != nil || target != "/dev/nbd0" {
		t.Fatalf("link: %q, %v", target, err)
	}
	if ls := td.ok(t, "ls"); !strings.Contains(ls, `"device": "/dev/nbd0"`) {
		t.Fatalf("ls does not show the attachment:\n%s", ls)
	}
	if _, err := td.attach("d", controlapi.AttachReq{}); err == nil || !strings.Contains(err.Error(), "already attached as /dev/nbd0") {
		t.Fatalf("second attach: %v", err)
	}
	resp, err := http.Get("http://" + td.addrs["metrics"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(scrape, []byte("\ngdm_nbd_attached_connections 4\n")) {
		t.Fatal("the scrape does not count the kernel's 4 connections")
	}
}

// Remove refuses an attached device; detach disconnects the kernel,
// removes the link and the record, and waits for the server to let go,
// so that a remove right after succeeds and leaves no file open.
func TestDetachThenRemove(t *testing.T) {
	k := &fakeKernel{}
	useFakeKernel(t, k)
	td := startTestDaemon(t, "")
	info, a := attachedDevice(t, td)
	td.fails(t, "attached as /dev/nbd0", "remove", "d")
	if err := td.detach("/dev/nbd0"); err != nil {
		t.Fatal(err)
	}
	if k.dev(0) != nil {
		t.Fatal("the kernel device is still connected")
	}
	if _, err := os.Lstat(info.Attached.Link); !os.IsNotExist(err) {
		t.Fatalf("link left behind: %v", err)
	}
	if i := td.info(t, "d"); i.Attached != nil || i.OpenConnections != 0 {
		t.Fatalf("after detach: attached %+v, %d connections", i.Attached, i.OpenConnections)
	}
	td.ok(t, "remove", "d")
	if open := openFiles(t, os.Getpid(), filepath.Dir(a)); len(open) != 0 {
		t.Fatalf("open after remove: %v", open)
	}
	if err := td.detach("d"); err == nil {
		t.Fatal("detach of a removed device succeeded")
	}
}

// remove --force detaches first; if its state cannot be written, it
// changes nothing.
func TestRemoveForceDetaches(t *testing.T) {
	k := &fakeKernel{}
	useFakeKernel(t, k)
	td := startTestDaemon(t, "")
	attachedDevice(t, td)
	td.d.state.failWrites.Store(true)
	td.fails(t, "nothing was changed", "remove", "d", "--force")
	td.d.state.failWrites.Store(false)
	if k.dev(0) == nil || td.info(t, "d").Attached == nil {
		t.Fatal("a remove --force that changed nothing detached the device")
	}
	td.ok(t, "remove", "d", "--force")
	if k.dev(0) != nil {
		t.Fatal("remove --force left the kernel device connected")
	}
}

// A detach whose state cannot be written changes nothing: the kernel
// device stays connected, the link stays, and the device says it is
// attached. Were it disconnected first, the kernel could hand its index to
// another attach, and the retried detach below would disconnect that one.
func TestDetachUnsavedChangesNothing(t *testing.T) {
	k := &fakeKernel{}
	useFakeKernel(t, k)
	td := startTestDaemon(t, "")
	info, _ := attachedDevice(t, td)
	td.d.state.failWrites.Store(true)
	err := td.detach("d")
	td.d.state.failWrites.Store(false)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("detach with the state unwritable = %v, want refused", err)
	}
	if k.dev(0) == nil {
		t.Fatal("a detach that changed nothing disconnected the kernel device")
	}
	if _, err := os.Lstat(info.Attached.Link); err != nil {
		t.Fatalf("a detach that changed nothing dropped the link: %v", err)
	}
	if i := td.info(t, "d"); i.Attached == nil || i.Attached.Index != 0 {
		t.Fatalf("after a refused detach: attached %+v", i.Attached)
	}
	if err := td.detach("d"); err != nil || k.dev(0) != nil || td.info(t, "d").Attached != nil {
		t.Fatalf("retried detach = %v; kernel device %v, attached %+v", err, k.dev(0), td.info(t, "d").Attached)
	}
}

// Without the driver, when the kernel refuses, or when its answer to a
// CONNECT it carried out is lost, attach fails plainly and leaves nothing:
// no record, no link, no connection, no kernel device of its own; and
// another device of the kernel's stays as it was.
func TestAttachFailureLeavesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		k    *fakeKernel
		want string
	}{
		{"no driver", &fakeKernel{noDriver: true}, "modprobe nbd"},
		{"kernel refuses", &fakeKernel{connectErr: unix.EBUSY}, "device or resource busy"},
		{"answer lost", &fakeKernel{lostReply: errors.New("nbdnetlink: receive: resource temporarily unavailable")}, "receive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			links := useFakeKernel(t, tc.k)
			tc.k.devs[0] = &fakeNBD{cfg: nbdnetlink.Config{Index: 0, Backend: "someone else's"}}
			td := startTestDaemon(t, "")
			a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
			td.ok(t, "create", "d", "--table", "0 2048 linear "+a+" 0")
			if _, err := td.attach("d", controlapi.AttachReq{Connections: 2}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("attach: %v, want %q", err, tc.want)
			}
			if _, err := os.Lstat(filepath.Join(links, "d")); !os.IsNotExist(err) {
				t.Fatalf("link: %v", err)
			}
			testkit.WaitFor(t, 10*time.Second, "the pairs' connections to close", func() bool { return td.info(t, "d").OpenConnections == 0 })
			if i := td.info(t, "d"); i.Attached != nil {
				t.Fatalf("recorded: %+v", i.Attached)
			}
			if other := tc.k.dev(0); other == nil || other.cfg.Backend != "someone else's" {
				t.Fatalf("the kernel's other device after the failed attach: %+v", other)
			}
			if n := tc.k.count(); n != 1 {
				t.Fatalf("the kernel has %d devices after the failed attach, want only the other one", n)
			}
			td.ok(t, "remove", "d")
		})
	}
}

// A file where the link goes is not replaced, and the attach is undone,
// its connections forgotten.
func TestAttachRefusesForeignLink(t *testing.T) {
	k := &fakeKernel{}
	links := useFakeKernel(t, k)
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 linear "+a+" 0")
	os.MkdirAll(links, 0o755)
	os.Symlink("/etc/passwd", filepath.Join(links, "d"))
	if _, err := td.attach("d", controlapi.AttachReq{}); err == nil || !strings.Contains(err.Error(), "not a link to an NBD device") {
		t.Fatalf("attach over a foreign link: %v", err)
	}
	if k.dev(0) != nil {
		t.Fatal("the kernel device was left connected")
	}
	if n := td.d.att.tracked(); n != 0 {
		t.Fatalf("%d connections tracked after the attach was undone", n)
	}
	if target, _ := os.Readlink(filepath.Join(links, "d")); target != "/etc/passwd" {
		t.Fatalf("the foreign link was changed to %q", target)
	}
}

// A rename moves the link; the kernel device stays as it is.
func TestRenameMovesLink(t *testing.T) {
	k := &fakeKernel{}
	links := useFakeKernel(t, k)
	td := startTestDaemon(t, "")
	attachedDevice(t, td)
	td.ok(t, "rename", "d", "e")
	if _, err := os.Lstat(filepath.Join(links, "d")); !os.IsNotExist(err) {
		t.Fatalf("old link: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(links, "e")); err != nil || target != "/dev/nbd0" {
		t.Fatalf("new link: %q, %v", target, err)
	}
	if i := td.info(t, "e"); i.Attached == nil || i.Attached.Link != filepath.Join(links, "e") {
		t.Fatalf("info: %+v", i.Attached)
	}
	if err := td.detach("/dev/gdm-nope"); err == nil {
		t.Fatal("detach of an unknown path succeeded")
	}
	if err := td.detach(filepath.Join(links, "e")); err != nil {
		t.Fatalf("detach by link: %v", err)
	}
}

// More kernel connections than one client may hold on the shared server:
// the attach server does not count them per client.
func TestAttachManyConnections(t *testing.T) {
	k := &fakeKernel{}
	useFakeKernel(t, k)
	td := startTestDaemon(t, "")
	for _, name := range []string{"a", "b", "c"} {
		f := testkit.Sparse(t, td.dir, name+".img", 1<<20)
		td.ok(t, "create", name, "--table", "0 2048 linear "+f+" 0")
		if _, err := td.attach(name, controlapi.AttachReq{Connections: 64}); err != nil {
			t.Fatalf("attach %s: %v", name, err)
		}
	}
	if e, _, err := k.dev(2).conns[63].do(0, 0, 512, nil); e != 0 || err != nil {
		t.Fatalf("read on the 192nd connection: errno %d, %v", e, err)
	}
}

// The options reach the kernel: the index asked for, read-only in the
// server flags, the timeouts in whole seconds; bad ones are refused.
func TestAttachOptions(t *testing.T) {
	k := &fakeKernel{}
	useFakeKernel(t, k)
	td := startTestDaemon(t, "")
	a := testkit.Sparse(t, td.dir, "a.img", 1<<20)
	td.ok(t, "create", "d", "--table", "0 2048 linear "+a+" 0")
	five := 5
	info, err := td.attach("d", controlapi.AttachReq{Index: &five, ReadOnly: true, TimeoutSeconds: 7})
	if err != nil || info.Attached.Device != "/dev/nbd5" {
		t.Fatalf("attach --index 5: %+v, %v", info.Attached, err)
	}
	cfg := k.dev(5).cfg
	if cfg.ServerFlags&nbdnetlink.FlagReadOnly == 0 || cfg.Timeout != 7*time.Second || cfg.DeadTimeout != defaultDeadTimeout*time.Second {
		t.Fatalf("kernel got %+v", cfg)
	}
	if len(k.dev(5).conns) != defaultAttachConns {
		t.Fatalf("%d connections by default", len(k.dev(5).conns))
	}
	td.ok(t, "create", "e", "--table", "0 2048 zero")
	if _, err := td.attach("e", controlapi.AttachReq{Index: &five}); err == nil || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("attach to a device in use: %v", err)
	}
	if _, err := td.attach("e", controlapi.AttachReq{Connections: 65}); err == nil {
		t.Fatal("65 connections accepted")
	}
	// The kernel would read 1<<32 as 0 and wrap a timeout past 32 bits
	// of ticks: refused as the client's mistake, before the kernel.
	huge := 1 << 32
	for _, req := range []controlapi.AttachReq{{Index: &huge}, {TimeoutSeconds: 50 * 86400}, {DeadTimeoutSeconds: 1 << 40}} {
		if _, err := td.attach("e", req); err == nil || !strings.Contains(err.Error(), "bad attach request") {
			t.Fatalf("attach %+v: %v", req, err)
		}
	}
	if td.info(t, "e").Attached != nil {
		t.Fatal("a refused attach attached e")
	}
}

// A bad attach request is the client's mistake: 422 with the reason, not
// a server error.
func TestBadAttachIsUnprocessable(t *testing.T) {
	useFakeKernel(t, &fakeKernel{})
	td := startTestDaemon(t, "")
	td.ok(t, "create", "d", "--table", "0 2048 zero")
	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", td.control)
	}}}
	resp, err := hc.Post("http://gdm/v1/devices/d/attach", "application/json", strings.NewReader(`{"connections": 65}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), "connections must be 1 to") {
		t.Fatalf("65 connections: %d %s", resp.StatusCode, body)
	}
}

// The temporary link an attach renames into place is named so that no
// device can have its name: "x"'s was ".tmp-x", and attaching x removed
// the link of an attached device named ".tmp-x".
func TestAttachKeepsOtherLinks(t *testing.T) {
	k := &fakeKernel{}
	links := useFakeKernel(t, k)
	td := startTestDaemon(t, "")
	for _, name := range []string{".tmp-x", "x"} {
		td.ok(t, "create", name, "--table", "0 2048 zero")
		if _, err := td.attach(name, controlapi.AttachReq{}); err != nil {
			t.Fatalf("attach %s: %v", name, err)
		}
	}
	for name, want := range map[string]string{".tmp-x": "/dev/nbd0", "x": "/dev/nbd1"} {
		if target, err := os.Readlink(filepath.Join(links, name)); err != nil || target != want {
			t.Errorf("link %s: %q, %v; want %s", name, target, err, want)
		}
	}
}

// A detach by path looks the device up, then waits for its verb lock;
// if meanwhile the device was detached and attached again as another
// /dev/nbdN, the detach must not disconnect that one.
func TestDetachByPathChecksUnderTheLock(t *testing.T) {
	k := &fakeKernel{}
	useFakeKernel(t, k)
	td := startTestDaemon(t, "")
	attachedDevice(t, td)
	name, err := td.d.attachedName("/dev/nbd0")
	if err != nil || name != "d" {
		t.Fatalf("lookup: %q, %v", name, err)
	}
	if err := td.detach("d"); err != nil {
		t.Fatal(err)
	}
	three := 3
	if _, err := td.attach("d", controlapi.AttachReq{Index: &three}); err != nil {
		t.Fatal(err)
	}
	if _, err := td.d.detachAs(name, "/dev/nbd0"); err == nil {
		t.Fatal("a detach of /dev/nbd0 succeeded on d, attached as /dev/nbd3")
	}
	if k.dev(3) == nil || td.info(t, "d").Attached == nil {
		t.Fatal("a detach of /dev/nbd0 disconnected /dev/nbd3")
	}
}
