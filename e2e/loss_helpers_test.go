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

// gdmGuestBoot bounds one boot of bootGdmGuest: a guard against a hang,
// not a speed bound (the power-loss script takes about a minute here).
const gdmGuestBoot = 6 * time.Minute

// bootGdmGuest boots a TCG guest whose initramfs has a static gdm beside
// nbd-client, mke2fs and e2fsck, runs script there with sh -e, and returns
// the console. The guest must reach GDM-VM-OK. Unlike bootGuest, gdm runs
// inside the guest: the script can reload tables between its own writes.
func bootGdmGuest(t *testing.T, script string) string {
	t.Helper()
	qemu := testkit.NeedTool(t, "qemu-system-x86_64")
	testkit.NeedTool(t, "busybox")
	testkit.NeedTool(t, "nbd-client")
	if k, _ := filepath.Glob("/boot/vmlinuz-*cloud-amd64"); len(k) == 0 {
		testkit.SkipOrFail(t, "linux-image-cloud-amd64 is not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "gdm")
	build := exec.Command("go", "build", "-ldflags=-s -w", "-o", bin, "../cmd/gdm")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // the initramfs has no libc for it
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building gdm: %v\n%s", err, out)
	}
	guest := filepath.Join(dir, "guest.sh")
	if err := os.WriteFile(guest, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	mk := exec.Command("bash", "vm-initramfs.sh", dir, guest)
	mk.Env = append(os.Environ(), "VM_BASE_PROGS=/usr/sbin/nbd-client /usr/sbin/mke2fs /usr/sbin/e2fsck", "VM_PROGS="+bin)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("vm-initramfs.sh: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), gdmGuestBoot)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-m", "1024", "-smp", "1",
		"-kernel", filepath.Join(dir, "vmlinuz"), "-initrd", filepath.Join(dir, "initrd.gz"),
		"-append", "console=ttyS0 panic=-1 edd=off quiet", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("guest ran for %v", time.Since(start).Round(time.Second))
	if err != nil || !strings.Contains(out.String(), "GDM-VM-OK") {
		t.Fatalf("guest failed (%v):\n%s", err, out.String())
	}
	return out.String()
}
