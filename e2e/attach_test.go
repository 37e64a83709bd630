package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// attachBoot bounds the guest's run: a guard against a hang, not a speed
// bound.
const attachBoot = 10 * time.Minute

// gdm attach, for real: in a TCG guest, gdm serve and the kernel's NBD
// driver (netlink), with ext4 and fio on the attached device; gdm killed
// with SIGKILL in the middle of fio and started again; a grow that reaches
// the kernel and resize2fs; detach and remove (attach-guest.sh).
func TestAttachGuest(t *testing.T) {
	console := bootAttachGuest(t)
	for _, want := range []string{
		"AT-ATTACHED /dev/nbd0", "AT-SIZE 262144", "AT-RO 0", "AT-WRITE-CACHE write back", "AT-FUA 1",
		"AT-BACKEND gdm:", "AT-INFO Attached:          /dev/nbd0 (4 connections", "AT-INFO Open count:        4",
		"AT-LS at\t(262144 sectors, ACTIVE)\t/dev/nbd0", "AT-FILES 4", "AT-KILLED", "AT-RESTARTED",
		"AT-FIO-RC 0", "err= 0:", "AT-RECONNECTED 1", "AT-SUMS-OK", "AT-INFO2 Open count:        4", "AT-GROWN 524288",
		"AT-FSCK-CLEAN", "AT-REMOVE-REFUSED gdm: remove at: device busy", "AT-DETACHED-SIZE 0", "AT-REMOVED", "GDM-VM-OK",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("the guest did not print %q", want)
		}
	}
	if strings.Contains(console, "AT-DISCARD 0\n") {
		t.Error("no discard on the attached device: TRIM did not reach the kernel")
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("guest lines:\n%s", atLines(console))
	}
}

func atLines(console string) string {
	var b strings.Builder
	for _, line := range strings.Split(console, "\n") {
		if strings.HasPrefix(line, "AT-") || strings.HasPrefix(line, "GDM-VM") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// bootAttachGuest boots the guest with gdm, mke2fs, e2fsck, resize2fs and
// fio, runs attach-guest.sh, and returns the console.
func bootAttachGuest(t *testing.T) string {
	qemu := testkit.NeedTool(t, "qemu-system-x86_64")
	testkit.NeedTool(t, "busybox")
	fio := testkit.NeedTool(t, "fio")
	resize := testkit.NeedTool(t, "resize2fs")
	if k, _ := filepath.Glob("/boot/vmlinuz-*cloud-amd64"); len(k) == 0 {
		testkit.SkipOrFail(t, "linux-image-cloud-amd64 is not installed")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-ldflags=-s -w", "-o", filepath.Join(dir, "gdm"), "../cmd/gdm")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // the initramfs has no libc for it
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building gdm: %v\n%s", err, out)
	}
	mk := exec.Command("bash", "vm-initramfs.sh", dir, "attach-guest.sh")
	mk.Env = append(os.Environ(), "VM_BASE_PROGS=/usr/sbin/mke2fs /usr/sbin/e2fsck "+resize+" "+fio,
		"VM_PROGS="+filepath.Join(dir, "gdm"))
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("vm-initramfs.sh: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), attachBoot)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-m", "1024", "-smp", "1",
		"-kernel", filepath.Join(dir, "vmlinuz"), "-initrd", filepath.Join(dir, "initrd.gz"),
		"-append", "console=ttyS0 panic=-1 edd=off quiet", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	console := strings.ReplaceAll(out.String(), "\r\n", "\n")
	t.Logf("guest ran in %v", time.Since(start).Round(time.Second))
	if err != nil || !strings.Contains(console, "GDM-VM-OK") {
		t.Fatalf("guest failed (%v):\n%s", err, console)
	}
	return console
}
