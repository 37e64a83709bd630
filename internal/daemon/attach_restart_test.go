package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/controlapi"
	"github.com/gdm-project/gdm/internal/testkit"
)

// At restart the daemon reconnects an attached device with RECONFIGURE:
// the same index and backend, as many new connections, over which the
// kernel's I/O reaches the table again.
func TestRestartReconnectsAttached(t *testing.T) {
	k := &fakeKernel{}
	links := useFakeKernel(t, k)
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	info, _ := attachedDevice(t, td)
	old := k.dev(0).conns
	td.Shutdown()
	for _, c := range old { // the kernel sees its connections end
		if _, _, err := c.do(0, 0, 512, nil); err == nil {
			t.Fatal("a connection outlived the daemon")
		}
	}
	os.Remove(filepath.Join(links, "d")) // as a reboot-less /dev would keep it, or not
	td = startTestDaemon(t, dir)
	if len(k.reconfigs) != 1 {
		t.Fatalf("%d reconfigures, want 1", len(k.reconfigs))
	}
	rc := k.reconfigs[0]
	if rc.Index != 0 || rc.Backend != info.Attached.Backend || rc.DeadTimeout.Seconds() != 60 {
		t.Fatalf("reconfigure %+v", rc)
	}
	conns := k.dev(0).conns
	if len(conns) != 4 {
		t.Fatalf("%d new connections, want 4", len(conns))
	}
	data := bytes.Repeat([]byte("r"), 512)
	if e, _, err := conns[0].do(1, 0, 512, data); e != 0 || err != nil {
		t.Fatalf("write after restart: errno %d, %v", e, err)
	}
	if e, got, err := conns[2].do(0, 0, 512, nil); e != 0 || err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after restart: errno %d, %v", e, err)
	}
	if target, err := os.Readlink(filepath.Join(links, "d")); err != nil || target != "/dev/nbd0" {
		t.Fatalf("link after restart: %q, %v", target, err)
	}
	if i := td.info(t, "d"); i.Attached == nil || i.Attached.Device != "/dev/nbd0" {
		t.Fatalf("info after restart: %+v", i.Attached)
	}
}

// A kernel that no longer has the device (it gave up after the dead
// timeout, or rebooted) refuses RECONFIGURE: the attachment is forgotten.
func TestRestartForgetsAttachmentTheKernelDropped(t *testing.T) {
	k := &fakeKernel{}
	links := useFakeKernel(t, k)
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	attachedDevice(t, td)
	td.Shutdown()
	k.devs = map[int]*fakeNBD{}
	td = startTestDaemon(t, dir)
	if i := td.info(t, "d"); i.Attached != nil {
		t.Fatalf("attachment kept: %+v", i.Attached)
	}
	if _, err := os.Lstat(filepath.Join(links, "d")); !os.IsNotExist(err) {
		t.Fatalf("link kept: %v", err)
	}
	td.Shutdown()
	td = startTestDaemon(t, dir)
	if i := td.info(t, "d"); i.Attached != nil {
		t.Fatalf("attachment back after a second restart: %+v", i.Attached)
	}
}

// A resume that grows the device tells the kernel the new size, and the
// kernel's connections reach the new end (they negotiated no size of
// their own).
func TestResizeReachesAttached(t *testing.T) {
	k := &fakeKernel{}
	useFakeKernel(t, k)
	td := startTestDaemon(t, "")
	_, a := attachedDevice(t, td)
	td.ok(t, "load", "d", "--table", "0 8192 linear "+a+" 0")
	td.ok(t, "resume", "d")
	if got := k.dev(0).cfg.SizeBytes; got != 8192*512 {
		t.Fatalf("kernel size %d, want %d", got, 8192*512)
	}
	if i := td.info(t, "d"); i.Attached.SizeBytes != 8192*512 {
		t.Fatalf("recorded size %d", i.Attached.SizeBytes)
	}
	if e, _, err := k.dev(0).conns[1].do(1, 8191*512, 512, make([]byte, 512)); e != 0 || err != nil {
		t.Fatalf("write at the new end over an old connection: errno %d, %v", e, err)
	}
	if e, _, _ := k.dev(0).conns[1].do(0, 8192*512, 512, nil); e == 0 {
		t.Fatal("a read past the end succeeded")
	}
}

// A device broken at restart keeps its attachment; the load and resume
// that repair it reconnect the kernel (within its dead timeout).
func TestRepairReconnectsAttached(t *testing.T) {
	k := &fakeKernel{}
	useFakeKernel(t, k)
	td, moved := brokenAttached(t, k)
	td.ok(t, "load", "d", "--table", "0 2048 linear "+moved+" 0")
	td.ok(t, "resume", "d")
	if len(k.reconfigs) != 1 || len(k.dev(0).conns) != 4 {
		t.Fatalf("after the repair: %d reconfigures, %d connections", len(k.reconfigs), len(k.dev(0).conns))
	}
	if e, _, err := k.dev(0).conns[0].do(0, 0, 512, nil); e != 0 || err != nil {
		t.Fatalf("read after the repair: errno %d, %v", e, err)
	}
	td.ok(t, "resume", "d") // connected: nothing more to do
	if len(k.reconfigs) != 1 {
		t.Fatalf("a connected device was reconnected again: %d reconfigures", len(k.reconfigs))
	}
}

// stoppedAttached runs a daemon in a new state dir, attaches device d
// there (attachedDevice) and stops the daemon; it returns the dir and
// d's backing file.
func stoppedAttached(t *testing.T) (dir, backing string) {
	t.Helper()
	dir = t.TempDir()
	td := startTestDaemon(t, dir)
	_, backing = attachedDevice(t, td)
	td.Shutdown()
	return dir, backing
}

// brokenAttached leaves device d broken after a restart, its attachment
// to /dev/nbd0 kept but not reconnected, and returns the daemon and d's
// backing file's new path.
func brokenAttached(t *testing.T, k *fakeKernel) (*testDaemon, string) {
	t.Helper()
	dir, a := stoppedAttached(t)
	if err := os.Rename(a, a+".moved"); err != nil {
		t.Fatal(err)
	}
	td := startTestDaemon(t, dir)
	if i := td.info(t, "d"); i.State != "BROKEN" || i.Attached == nil || i.Attached.Device != "/dev/nbd0" {
		t.Fatalf("after restart: %s, attached %+v", i.State, i.Attached)
	}
	if len(k.reconfigs) != 0 {
		t.Fatalf("a broken device was reconnected: %+v", k.reconfigs)
	}
	return td, a + ".moved"
}

// The kernel's device gets the table's logical block size at attach (a
// crypt of 4 KiB sectors: 4096), and the new one when a resume changes it,
// as dm's device takes its table's; the attachment records it.
func TestAttachBlockSize(t *testing.T) {
	k := &fakeKernel{}
	useFakeKernel(t, k)
	td := startTestDaemon(t, "")
	img := testkit.Sparse(t, td.dir, "c.img", 1<<20)
	crypt := "0 2048 crypt aes-xts-plain64 " + strings.Repeat("0123456789abcdef", 4) + " 0 " + img + " 0 1 sector_size:4096"
	td.ok(t, "create", "d", "--table", crypt)
	if _, err := td.attach("d", controlapi.AttachReq{Connections: 1}); err != nil {
		t.Fatal(err)
	}
	if got := k.dev(0).cfg.BlockSize; got != 4096 {
		t.Fatalf("kernel block size %d at attach, want 4096", got)
	}
	td.ok(t, "load", "d", "--table", "0 2048 linear "+img+" 0")
	td.ok(t, "resume", "d")
	if got := k.dev(0).cfg.BlockSize; got != 512 {
		t.Fatalf("kernel block size %d after a resume to a linear table, want 512", got)
	}
	if i := td.info(t, "d"); i.Attached.BlockSize != 512 {
		t.Fatalf("recorded block size %d", i.Attached.BlockSize)
	}
}
