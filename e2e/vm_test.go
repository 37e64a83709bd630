package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdm-project/gdm/internal/testkit"
)

// guestScript is what the VM runs against gdm with the kernel's nbd-client:
// mkfs, mount, write and checksum files, unmount, drop caches, remount and
// verify; fio with libaio, O_DIRECT and crc32c verify on the raw device
// (past the filesystem); e2fsck -fn; disconnect. sh -e stops at the first
// failure.
const guestScript = `
nbd-client 10.0.2.100 10809 /dev/nbd0 -N vm
mkfs.ext4 -q -F -b 4096 /dev/nbd0 32768
mount -t ext4 /dev/nbd0 /mnt
i=0
while [ $i -lt 6 ]; do
	dd if=/dev/urandom of=/mnt/file$i bs=64k count=$((i * 16 + 7)) 2>/dev/null
	i=$((i + 1))
done
mkdir /mnt/dir
dd if=/dev/urandom of=/mnt/dir/big bs=1M count=24 2>/dev/null
cd /mnt && md5sum file* dir/big > /tmp/sums && cd /
umount /mnt
sync
echo 3 > /proc/sys/vm/drop_caches
mount -t ext4 /dev/nbd0 /mnt
cd /mnt && md5sum -c /tmp/sums && cd /
umount /mnt
echo GDM-FIO-START
fio --name=guest --filename=/dev/nbd0 --ioengine=libaio --direct=1 --rw=randwrite --bs=4k --bsrange=4k-64k \
	--iodepth=16 --offset=128m --size=48m --verify=crc32c --do_verify=1 --verify_fatal=1 --output-format=terse >/tmp/fio.out
cut -d';' -f5 /tmp/fio.out | grep -qx 0
echo GDM-FIO-OK
e2fsck -fn /dev/nbd0
nbd-client -d /dev/nbd0
`

// bootGuest builds the initramfs and runs the guest against gdm's NBD
// socket through qemu's user network (no host address is touched), under
// TCG. It returns the console output.
func bootGuest(t *testing.T, sock string) string {
	t.Helper()
	qemu := testkit.NeedTool(t, "qemu-system-x86_64")
	testkit.NeedTool(t, "busybox")
	testkit.NeedTool(t, "nbd-client")
	kernels, _ := filepath.Glob("/boot/vmlinuz-*cloud-amd64")
	if len(kernels) == 0 {
		testkit.SkipOrFail(t, "linux-image-cloud-amd64 is not installed")
	}
	dir := t.TempDir()
	guest := filepath.Join(dir, "guest.sh")
	os.WriteFile(guest, []byte(guestScript), 0o644)
	if out, err := exec.Command("bash", "vm-initramfs.sh", dir, guest).CombinedOutput(); err != nil {
		t.Fatalf("vm-initramfs.sh: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-m", "1024", "-smp", "1",
		"-kernel", filepath.Join(dir, "vmlinuz"), "-initrd", filepath.Join(dir, "initrd.gz"),
		"-append", "console=ttyS0 panic=-1 edd=off quiet",
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
		"-netdev", "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:10809-unix:"+sock,
		"-device", "virtio-net-pci,netdev=n0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	console := out.String()
	if err != nil || !strings.Contains(console, "GDM-VM-OK") {
		t.Fatalf("guest failed (%v):\n%s", err, console)
	}
	return console
}

// The kernel client as users run it: nbd-client to a gdm device, ext4, fio.
// Then the same run while the host reloads the device's table between two
// equivalent layouts every 100 ms.
func TestKernelClient(t *testing.T) {
	d := startDaemon(t, "")
	file := testkit.Sparse(t, d.dir, "vm.img", 256<<20)
	one, many := twoLayouts(file, 256<<11)
	d.gdm("create", "vm", "--table", one)

	t.Run("plain", func(t *testing.T) {
		console := bootGuest(t, d.nbdSock)
		for _, want := range []string{"Connected /dev/nbd0", "GDM-FIO-OK", "file0: OK", "dir/big: OK"} {
			if !strings.Contains(console, want) {
				t.Errorf("console lacks %q:\n%s", want, console)
			}
		}
	})

	t.Run("reloading", func(t *testing.T) {
		var reloads atomic.Int64
		stop := make(chan struct{})
		errc := make(chan error, 1)
		go func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					errc <- nil
					return
				case <-tick.C:
				}
				if out, err := d.try("load", "vm", "--table", []string{many, one}[i%2]); err != nil {
					errc <- fmt.Errorf("load: %v %s", err, out)
					return
				}
				mode := []string{"resume", "vm"}
				if i%2 == 1 {
					mode = append(mode, "--live")
				}
				if out, err := d.try(mode...); err != nil {
					errc <- fmt.Errorf("resume: %v %s", err, out)
					return
				}
				reloads.Add(1)
			}
		}()
		console := bootGuest(t, d.nbdSock)
		close(stop)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if reloads.Load() < 20 {
			t.Fatalf("only %d reloads during the guest run", reloads.Load())
		}
		if strings.Contains(console, "I/O error") || strings.Contains(console, "blk_update_request") {
			t.Fatalf("the guest saw I/O errors during reloads:\n%s", console)
		}
		t.Logf("%d reloads during the guest's mkfs, files, fio and fsck", reloads.Load())
	})
}
