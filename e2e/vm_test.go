package e2e

import (
	"fmt"
	"net"
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
nbd-client 10.0.2.2 @PORT@ /dev/nbd0 -N vm
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
// TCP listener (addr, on 127.0.0.1) under TCG, through qemu's user
// network, where 10.0.2.2 is the host's loopback. It returns the console
// output. The guest's nbd-client dials when it runs: a guestfwd to the
// UNIX socket would connect at qemu's start instead, and a boot slower
// than gdm's 10 s handshake timeout (TCG on a loaded machine) then left
// nbd-client waiting on a connection gdm had closed.
func bootGuest(t *testing.T, addr string) string {
	t.Helper()
	testkit.NeedTool(t, "nbd-client")
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Replace(guestScript, "@PORT@", port, 1)
	return bootTCG(t, t.TempDir(), script, tcgGuest{timeout: 8 * time.Minute,
		extra: []string{"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"}})
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
		console := bootGuest(t, d.tcp)
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
		console := bootGuest(t, d.tcp)
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
