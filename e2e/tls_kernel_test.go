package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdm-project/gdm/internal/testkit"
)

// tlsKernelScript runs in the guest: gdm with --tls require and client
// certificates, the kernel's nbd-client refused without TLS and attached
// with -x and a client certificate, then ext4 made, written, checked with
// e2fsck and read back, all through TLS. @FILES@ writes the PEM files.
const tlsKernelScript = `
dmesg -n 1
fail() { echo "TLS-FAIL $*"; exit 1; }
mkdir -p /tmp/gdm /tmp/pki
@FILES@
export GDM_CONTROL=/tmp/gdm/control.sock
gdm serve --state-dir /tmp/gdm/state --control $GDM_CONTROL --nbd-socket "" \
	--nbd-listen 127.0.0.1:10809 --metrics-listen "" --log-level warn \
	--tls require --tls-cert /tmp/pki/server-cert.pem --tls-key /tmp/pki/server-key.pem \
	--tls-client-ca /tmp/pki/ca-cert.pem &
i=0
while [ ! -S $GDM_CONTROL ]; do
	i=$((i + 1)); [ $i -lt 600 ] || fail "gdm serve did not come up"
	sleep 0.1
done
truncate -s 64M /tmp/disk.img
gdm create sec --table "0 131072 linear /tmp/disk.img 0"
if nbd-client 127.0.0.1 10809 /dev/nbd1 -N sec -t 30 >/dev/null 2>&1; then fail "attached without TLS"; fi
TLS="-enable-tls -certfile /tmp/pki/client-cert.pem -keyfile /tmp/pki/client-key.pem -cacertfile /tmp/pki/ca-cert.pem -tlshostname localhost"
nbd-client 127.0.0.1 10809 /dev/nbd0 -N sec -t 30 $TLS || fail "nbd-client -x"
mkfs.ext4 -q -F -b 4096 /dev/nbd0 || fail mkfs
mount -t ext4 /dev/nbd0 /mnt || fail mount
dd if=/dev/urandom of=/mnt/data bs=64k count=64 conv=fsync 2>/dev/null
md5sum /mnt/data > /tmp/sum
umount /mnt
nbd-client -d /dev/nbd0
nbd-client 127.0.0.1 10809 /dev/nbd0 -N sec -t 30 $TLS || fail "nbd-client -x again"
e2fsck -fn /dev/nbd0 >/tmp/fsck 2>&1 || { cat /tmp/fsck; fail "e2fsck"; }
mount -t ext4 /dev/nbd0 /mnt || fail "mount again"
md5sum -c /tmp/sum >/dev/null || fail "data read back through TLS differs"
umount /mnt
nbd-client -d /dev/nbd0
echo TLS-KERNEL-OK
`

// The kernel's nbd-client with TLS (-x, client certificate) against gdm
// with --tls require, inside a TCG guest: ext4 made, written, fscked and
// read back through TLS; without TLS it is refused.
func TestKernelClientTLS(t *testing.T) {
	certs := testkit.NewTLSCerts(t)
	var files strings.Builder
	for _, name := range []string{"ca-cert.pem", "server-cert.pem", "server-key.pem", "client-cert.pem", "client-key.pem"} {
		pem, err := os.ReadFile(filepath.Join(certs.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&files, "cat > /tmp/pki/%s <<'PEM'\n%sPEM\n", name, pem)
	}
	console := bootGdmGuest(t, strings.Replace(tlsKernelScript, "@FILES@", files.String(), 1))
	if !strings.Contains(console, "TLS-KERNEL-OK") {
		t.Fatalf("guest did not finish:\n%s", console)
	}
}
