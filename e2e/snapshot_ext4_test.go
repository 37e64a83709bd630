package e2e

import (
	"strings"
	"testing"
)

// snapExt4Script runs in a guest with gdm inside (bootGdmGuest). The
// origin is `snapshot-origin` over a 64 MiB file from the start; ext4 is
// made on it through nbd-client, four files are written and their sums
// kept, and it is unmounted (a clean filesystem to snapshot, as an LVM
// user freezes or unmounts first). Then a snapshot device (P, 4 KiB
// chunks, COW in a 32 MiB file) is made, and both are mounted at once
// (ext4 does not mind the shared UUID). Each gets its own changes: the
// origin an overwritten base0 and a new file on-origin; the snapshot base1
// removed and a new file on-snap. Both are unmounted, detached, and
// attached again at fresh nbd devices (no page cache can answer), e2fsck
// -fn must find both clean, and each must hold exactly its own files.
const snapExt4Script = `
dmesg -n 1
fail() { echo "SE-FAIL $*"; exit 1; }
mkdir -p /tmp/gdm /mnt/o /mnt/s
export GDM_CONTROL=/tmp/gdm/control.sock
gdm serve --state-dir /tmp/gdm/state --control $GDM_CONTROL --nbd-socket "" \
	--nbd-listen 127.0.0.1:10809 --metrics-listen "" --log-level warn &
i=0
while [ ! -S $GDM_CONTROL ]; do
	i=$((i + 1)); [ $i -lt 600 ] || fail "gdm serve did not come up"
	sleep 0.1
done
truncate -s 64M /tmp/origin.img
truncate -s 32M /tmp/cow.img
gdm create orig --table "0 131072 snapshot-origin /tmp/origin.img"
nbd-client 127.0.0.1 10809 /dev/nbd0 -N orig -t 30
mkfs.ext4 -q -F -b 4096 /dev/nbd0
mount -t ext4 /dev/nbd0 /mnt/o
for i in 0 1 2 3; do
	dd if=/dev/urandom of=/mnt/o/base$i bs=64k count=$((i * 4 + 2)) 2>/dev/null
done
umount /mnt/o
gdm create snap --table "0 131072 snapshot /tmp/origin.img /tmp/cow.img P 8"
echo SE-SNAP $(gdm status snap)
nbd-client 127.0.0.1 10809 /dev/nbd1 -N snap -t 30
mount -t ext4 /dev/nbd0 /mnt/o
mount -t ext4 /dev/nbd1 /mnt/s
cd /mnt/o && md5sum base0 base1 base2 base3 > /tmp/base.sum && cd /
grep -v base0 /tmp/base.sum > /tmp/base-no0.sum
grep base0 /tmp/base.sum > /tmp/base-0.sum
grep -v base1 /tmp/base.sum > /tmp/base-no1.sum
dd if=/dev/urandom of=/mnt/o/base0 bs=64k count=2 conv=notrunc 2>/dev/null
dd if=/dev/urandom of=/mnt/o/on-origin bs=64k count=40 2>/dev/null
rm /mnt/s/base1
dd if=/dev/urandom of=/mnt/s/on-snap bs=64k count=40 2>/dev/null
md5sum /mnt/o/base0 /mnt/o/on-origin | sed 's#/mnt/o/##' > /tmp/o.sum
md5sum /mnt/s/on-snap | sed 's#/mnt/s/##' > /tmp/s.sum
umount /mnt/o
umount /mnt/s
nbd-client -d /dev/nbd0
nbd-client -d /dev/nbd1
echo SE-STATUS $(gdm status snap)
nbd-client 127.0.0.1 10809 /dev/nbd2 -N orig -t 30
nbd-client 127.0.0.1 10809 /dev/nbd3 -N snap -t 30
e2fsck -fn /dev/nbd2 > /tmp/fsck.out 2>&1 || { sed 's/^/SE-FSCK-ORIGIN /' /tmp/fsck.out; fail "e2fsck -fn: the origin is not clean"; }
echo SE-ORIGIN-CLEAN
e2fsck -fn /dev/nbd3 > /tmp/fsck.out 2>&1 || { sed 's/^/SE-FSCK-SNAP /' /tmp/fsck.out; fail "e2fsck -fn: the snapshot is not clean"; }
echo SE-SNAP-CLEAN
mount -t ext4 -o ro /dev/nbd2 /mnt/o
mount -t ext4 -o ro /dev/nbd3 /mnt/s
bad=""
cd /mnt/o
md5sum -c -s /tmp/o.sum || bad="$bad; the origin lost its own writes"
md5sum -c -s /tmp/base-no0.sum || bad="$bad; the origin's untouched files changed"
! md5sum -c -s /tmp/base-0.sum 2>/dev/null || bad="$bad; the origin's base0 is the old one"
[ ! -e on-snap ] || bad="$bad; the snapshot's file is on the origin"
cd /mnt/s
md5sum -c -s /tmp/s.sum || bad="$bad; the snapshot lost its own file"
md5sum -c -s /tmp/base-no1.sum || bad="$bad; the snapshot's files are not the origin's as they were"
[ ! -e base1 ] || bad="$bad; base1, removed on the snapshot, is there"
[ ! -e on-origin ] || bad="$bad; the origin's file is on the snapshot"
cd /
[ -z "$bad" ] || fail "$bad"
echo SE-FILES-OK
umount /mnt/o
umount /mnt/s
nbd-client -d /dev/nbd2
nbd-client -d /dev/nbd3
`

// ext4 on a snapshot of an ext4 origin, both mounted and written at once
// through gdm's snapshot-origin and snapshot targets: e2fsck -fn finds
// both clean and each holds its own files (snapExt4Script). The origin's
// writes after the snapshot must copy each chunk first, or the snapshot's
// files (all its metadata is the origin's) would read the origin's new
// blocks and fsck would fail.
func TestSnapshotExt4(t *testing.T) {
	console := bootGdmGuest(t, snapExt4Script)
	for _, want := range []string{"SE-SNAP 0 131072 snapshot ", "SE-ORIGIN-CLEAN", "SE-SNAP-CLEAN", "SE-FILES-OK", "GDM-VM-OK"} {
		if !strings.Contains(console, want) {
			t.Errorf("the guest did not print %q", want)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s", console)
	}
}
