package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gdm-project/gdm/internal/controlapi"
)

// The kernel checks a RECONFIGURE's backend only against a device that
// has one, and a DISCONNECT's never. Once the kernel has let an attached
// index go while gdm was down (nbd-client -d, a reboot) and another
// program's nbd-client has it now, with no backend, the restart must not
// take that device over: neither resize it to gdm's size nor hand it
// gdm's sockets. The attachment is forgotten; the device is left alone.
func TestRestartLeavesAForeignDeviceAlone(t *testing.T) {
	k := &fakeKernel{}
	links := useFakeKernel(t, k)
	dir, _ := stoppedAttached(t)
	foreign := k.plant(0)
	td := startTestDaemon(t, dir)
	if len(k.reconfigs) != 0 || k.dev(0) != foreign || foreign.cfg.SizeBytes != 1<<30 {
		t.Fatalf("another program's /dev/nbd0 was reconfigured: %+v", k.reconfigs)
	}
	if i := td.info(t, "d"); i.Attached != nil {
		t.Fatalf("attachment kept: %+v", i.Attached)
	}
	if _, err := os.Lstat(filepath.Join(links, "d")); !os.IsNotExist(err) {
		t.Fatalf("link to another program's device kept: %v", err)
	}
}

// A detach (or remove --force) of an attachment the kernel no longer
// holds forgets it and disconnects nothing: /dev/nbd0 is now another
// program's, or another gdm device's, and DISCONNECT would end it.
func TestDetachLeavesAForeignDeviceAlone(t *testing.T) {
	t.Run("another program", func(t *testing.T) {
		k := &fakeKernel{}
		useFakeKernel(t, k)
		td, _ := brokenAttached(t, k)
		foreign := k.plant(0)
		if err := td.detach("d"); err != nil {
			t.Fatalf("detach of an attachment the kernel let go: %v", err)
		}
		if k.dev(0) != foreign {
			t.Fatal("detach disconnected another program's /dev/nbd0")
		}
		if i := td.info(t, "d"); i.Attached != nil {
			t.Fatalf("attachment kept: %+v", i.Attached)
		}
	})
	t.Run("another gdm device", func(t *testing.T) {
		k := &fakeKernel{}
		useFakeKernel(t, k)
		td, _ := brokenAttached(t, k)
		k.mu.Lock()
		delete(k.devs, 0)
		k.mu.Unlock()
		td.ok(t, "create", "e", "--table", "0 2048 zero")
		info, err := td.attach("e", controlapi.AttachReq{})
		if err != nil || info.Attached.Device != "/dev/nbd0" {
			t.Fatalf("attach e: %+v, %v", info.Attached, err)
		}
		td.ok(t, "remove", "d", "--force")
		if dev := k.dev(0); dev == nil || dev.cfg.Backend != info.Attached.Backend {
			t.Fatal("remove --force of d disconnected e's /dev/nbd0")
		}
		if i := td.info(t, "e"); i.Attached == nil {
			t.Fatal("e lost its attachment")
		}
	})
}

// A repair whose reconnect fails (the kernel's device cannot be told
// apart: /sys unreadable) does not tell the kernel the new size either:
// the device at the index may be another program's.
func TestRepairResizesOnlyItsOwnDevice(t *testing.T) {
	k := &fakeKernel{}
	useFakeKernel(t, k)
	td, moved := brokenAttached(t, k)
	foreign := k.plant(0)
	k.backendErr = errors.New("sysfs unreadable")
	td.ok(t, "load", "d", "--table", "0 8192 linear "+moved+" 0")
	td.ok(t, "resume", "d")
	if len(k.reconfigs) != 0 || foreign.cfg.SizeBytes != 1<<30 {
		t.Fatalf("another program's /dev/nbd0 was reconfigured: %+v", k.reconfigs)
	}
	if i := td.info(t, "d"); i.Attached == nil {
		t.Fatal("an attachment the kernel's device could not be checked for was forgotten")
	}
}
