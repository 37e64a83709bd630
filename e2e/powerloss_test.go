package e2e

import (
	"strings"
	"testing"
)

// lossDrop is the table the guest loads to simulate the crash, as xfstests'
// dm-flakey helpers do: never up, always down, and while down every write
// (and flush) is acknowledged and thrown away, reads pass through. From that
// resume on, the disk keeps exactly what the filesystem had made durable.
const lossDrop = "flakey /tmp/disk.img 0 0 3600 1 drop_writes"

// lossScript runs in the guest, gdm's daemon and the kernel's nbd client
// both in there, so that the script itself reloads the table at the exact
// point between two writes (no host-guest handshake). It prints PL-* lines
// for the host to check; fail() names what went wrong and stops the script.
//
// Before the switch: ext4, six files each written and fsynced with dd
// conv=fsync, their md5sums kept in guest memory. After the switch to
// lossDrop: an fsynced overwrite and an fsynced append of two of those
// files, an unlink and a truncate of two others, and a new fsynced file
// (each of these would change a checksum or the new file's absence if it
// reached the disk). Then the crash: nbd-client -d with the filesystem
// still mounted, no unmount and no sync, and the disk is attached again at
// a fresh /dev/nbd1 so no page cache of nbd0 can answer. e2fsck -fy replays
// the journal; e2fsck -fn must then find nothing; the six fsynced files must
// read back with their checksums, and the new file must not be there.
// (e2fsck -fy also fixes the superblock's free block and inode counts,
// which ext4 updates there only at unmount: expected after any crash.)
const lossScript = `
dmesg -n 1
fail() { echo "PL-FAIL $*"; exit 1; }
mkdir -p /tmp/gdm /mnt2
export GDM_CONTROL=/tmp/gdm/control.sock
gdm serve --state-dir /tmp/gdm/state --control $GDM_CONTROL --nbd-socket "" \
	--nbd-listen 127.0.0.1:10809 --metrics-listen "" --log-level warn &
i=0
while [ ! -S $GDM_CONTROL ]; do
	i=$((i + 1)); [ $i -lt 600 ] || fail "gdm serve did not come up"
	sleep 0.1
done
truncate -s 64M /tmp/disk.img
LINEAR="0 131072 linear /tmp/disk.img 0"
DROP="0 131072 @DROP@"
gdm create pl --table "$LINEAR"
nbd-client 127.0.0.1 10809 /dev/nbd0 -N pl -t 30
mkfs.ext4 -q -F -b 4096 /dev/nbd0
mount -t ext4 /dev/nbd0 /mnt
i=0
while [ $i -lt 6 ]; do
	dd if=/dev/urandom of=/mnt/keep$i bs=16k count=$((i * 8 + 3)) conv=fsync 2>/dev/null
	i=$((i + 1))
done
cd /mnt && md5sum keep* > /tmp/sums && cd /
echo PL-FSYNCED $(wc -l < /tmp/sums)

gdm load pl --table "$DROP"
gdm resume pl
echo PL-DROPPING $(gdm table pl)
dd if=/dev/urandom of=/mnt/keep0 bs=4k count=5 seek=1 conv=notrunc,fsync 2>/dev/null
dd if=/dev/urandom of=/mnt/keep1 bs=4k count=7 oflag=append conv=notrunc,fsync 2>/dev/null
rm /mnt/keep2
truncate -s 0 /mnt/keep3
dd if=/dev/urandom of=/mnt/after bs=64k count=4 conv=fsync 2>/dev/null
md5sum /mnt/after > /tmp/after.sum
cd /mnt && md5sum keep* | sed 's/^/PL-CHANGED /' && cd /

nbd-client -d /dev/nbd0
echo PL-CRASHED
gdm load pl --table "$LINEAR"
gdm resume pl
nbd-client 127.0.0.1 10809 /dev/nbd1 -N pl -t 30
rc=0
e2fsck -fy /dev/nbd1 > /tmp/fsck.out 2>&1 || rc=$?
sed 's/^/PL-FSCKY /' /tmp/fsck.out
echo PL-FSCKY-RC $rc
[ $rc -le 1 ] || fail "e2fsck -fy exited $rc"
e2fsck -fn /dev/nbd1 > /tmp/fsck.out 2>&1 || { sed 's/^/PL-FSCKN /' /tmp/fsck.out; fail "e2fsck -fn found errors after the replay"; }
echo PL-FSCK-CLEAN
mount -t ext4 /dev/nbd1 /mnt2
cd /mnt2
md5sum -c /tmp/sums 2>&1 | sed 's/^/PL-SUM /'
bad=""
if md5sum -c -s /tmp/sums; then echo PL-SUMS-OK; else bad="$bad; an fsynced file lost its content"; fi
cd /
sed 's#/mnt/#/mnt2/#' /tmp/after.sum > /tmp/after2.sum
if [ -e /mnt2/after ] && md5sum -c -s /tmp/after2.sum; then
	bad="$bad; the file written after the switch is on the disk: writes were not dropped"
else
	echo PL-DROPPED-OK
fi
[ -z "$bad" ] || fail "$bad"
umount /mnt2
nbd-client -d /dev/nbd1
`

// Power loss as xfstests simulates it, with gdm's flakey target in place of
// dm-flakey: what ext4 fsynced before the crash survives it, with a clean
// fsck after the journal replay, and what came after the switch to
// drop_writes is gone, so the test cannot pass if flakey passes writes
// through. One guest boot under TCG runs it all (lossScript).
func TestPowerLossFlakey(t *testing.T) {
	script := strings.ReplaceAll(lossScript, "@DROP@", lossDrop)
	console := bootGdmGuest(t, script)
	for _, want := range []string{"PL-FSYNCED 6", "PL-DROPPING 0 131072 flakey ", "PL-CRASHED",
		"PL-FSCKY /dev/nbd1: recovering journal", "PL-FSCK-CLEAN", "PL-SUMS-OK", "PL-DROPPED-OK", "GDM-VM-OK"} {
		if !strings.Contains(console, want) {
			t.Errorf("the guest did not print %q", want)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("guest lines:\n%s", plLines(console))
	}
}

// plLines is the script's own output, without the kernel's noise.
func plLines(console string) string {
	var b strings.Builder
	for _, line := range strings.Split(console, "\n") {
		if line = strings.TrimRight(line, "\r"); strings.HasPrefix(line, "PL-") || strings.HasPrefix(line, "GDM-VM") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
