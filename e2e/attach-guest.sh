# gdm attach in the guest (attach_test.go): gdm serve and the kernel's NBD
# driver both in there. Prints AT-* lines for the host to check; fail()
# names what went wrong, shows the kernel's last words, and stops.
dmesg -n 1
fail() { echo "AT-FAIL $*"; dmesg | tail -25 | sed 's/^/AT-DMESG /'; sed 's/^/AT-LOG /' /tmp/gdm.log; exit 1; }
ln -sf /proc/mounts /etc/mtab # resize2fs must see that the fs is mounted
mkdir -p /tmp/gdm
export GDM_CONTROL=/tmp/gdm/control.sock
start_gdm() {
	rm -f $GDM_CONTROL # a killed daemon leaves its socket
	gdm serve --state-dir /tmp/gdm/state --control $GDM_CONTROL --nbd-socket "" \
		--metrics-listen "" --log-level info >> /tmp/gdm.log 2>&1 &
	GDM_PID=$!
	i=0
	while [ ! -S $GDM_CONTROL ]; do
		i=$((i + 1)); [ $i -lt 600 ] || fail "gdm serve did not come up"
		sleep 0.1
	done
}
writes() { awk '{print $5}' /sys/block/$N/stat; }

start_gdm
truncate -s 256M /tmp/disk.img
gdm create at --table "0 262144 linear /tmp/disk.img 0"
DEV=$(gdm attach at --connections 4 --timeout 10s --dead-timeout 60s)
N=${DEV#/dev/}
echo AT-ATTACHED $DEV
[ -b "$DEV" ] || fail "$DEV is not a block device"
[ "$(readlink /dev/gdm/at)" = "$DEV" ] || fail "/dev/gdm/at -> $(readlink /dev/gdm/at)"
echo AT-SIZE $(cat /sys/block/$N/size)
echo AT-RO $(cat /sys/block/$N/ro)
echo AT-WRITE-CACHE $(cat /sys/block/$N/queue/write_cache)
echo AT-FUA $(cat /sys/block/$N/queue/fua)
echo AT-DISCARD $(cat /sys/block/$N/queue/discard_max_bytes)
echo AT-BACKEND $(cat /sys/block/$N/backend)
gdm info at | sed 's/^/AT-INFO /'
gdm ls | sed 's/^/AT-LS /'

mkfs.ext4 -q -F -b 4096 /dev/gdm/at
mount -t ext4 $DEV /mnt
i=0
while [ $i -lt 4 ]; do
	dd if=/dev/urandom of=/mnt/keep$i bs=16k count=$((i * 8 + 3)) conv=fsync 2>/dev/null
	i=$((i + 1))
done
cd /mnt && md5sum keep* > /tmp/sums && cd /
echo AT-FILES $(wc -l < /tmp/sums)

# fio writes and verifies through the page-cache-free path; gdm is killed
# once fio's writes are flowing, and started again within the dead timeout.
fio --name=v --filename=/mnt/fio.dat --size=24M --bs=4k --rw=randwrite --ioengine=libaio \
	--direct=1 --iodepth=16 --verify=crc32c --do_verify=1 --verify_fatal=1 > /tmp/fio.out 2>&1 &
FIO=$!
base=$(writes)
i=0
while [ $(( $(writes) - base )) -lt 2000 ]; do
	i=$((i + 1)); [ $i -lt 3000 ] || fail "fio wrote nothing"
	sleep 0.1
done
kill -9 $GDM_PID
wait $GDM_PID 2>/dev/null || true
echo AT-KILLED after $(( $(writes) - base )) writes
[ -b "$DEV" ] || fail "$DEV went away with gdm"
start_gdm
echo AT-RESTARTED
rc=0
wait $FIO || rc=$?
sed 's/^/AT-FIO /' /tmp/fio.out | grep -iE "err|verify|WRITE:|READ:" || true
echo AT-FIO-RC $rc
echo AT-RECONNECTED $(grep -c "reconnected an attached device" /tmp/gdm.log)
[ $rc -eq 0 ] || fail "fio exited $rc"
[ -b "$DEV" ] || fail "$DEV went away"
cd /mnt && md5sum -c -s /tmp/sums && echo AT-SUMS-OK || fail "files changed"
cd /
gdm info at | sed 's/^/AT-INFO2 /'

gdm load at --table "0 524288 linear /tmp/disk.img 0"
gdm resume at
echo AT-GROWN $(cat /sys/block/$N/size)
before=$(df -k /mnt | awk 'NR==2 {print $2}')
resize2fs $DEV > /tmp/resize.out 2>&1 || { cat /tmp/resize.out; fail "resize2fs"; }
after=$(df -k /mnt | awk 'NR==2 {print $2}')
echo AT-FS-KB $before $after
[ "$after" -gt "$before" ] || fail "the filesystem did not grow"
dd if=/dev/urandom of=/mnt/big bs=1M count=150 conv=fsync 2>/dev/null || fail "writing past the old end"
umount /mnt
e2fsck -fn $DEV > /tmp/fsck.out 2>&1 || { sed 's/^/AT-FSCK /' /tmp/fsck.out; fail "e2fsck -fn"; }
echo AT-FSCK-CLEAN

gdm remove at 2>&1 | sed 's/^/AT-REMOVE-REFUSED /' || true
gdm detach at
[ ! -e /dev/gdm/at ] && [ ! -L /dev/gdm/at ] || fail "/dev/gdm/at left behind"
echo AT-DETACHED-SIZE $(cat /sys/block/$N/size)
gdm info at | grep -q "Open count: *0" || fail "connections left: $(gdm info at)"
gdm remove at
ls -l /proc/$GDM_PID/fd | grep disk.img && fail "disk.img still open" || true
echo AT-REMOVED

# A table of 4 KiB blocks (crypt's sector_size) gives the kernel's device
# 4 KiB logical blocks, as dm gives its device its table's.
truncate -s 8M /tmp/c.img
gdm create c4k --table "0 16384 crypt aes-xts-plain64 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 0 /tmp/c.img 0 1 sector_size:4096"
DEV2=$(gdm attach c4k --connections 1)
echo AT-LBS $(cat /sys/block/${DEV2#/dev/}/queue/logical_block_size)
dd if=$DEV2 of=/dev/null bs=4k count=16 2>/dev/null || fail "reading the 4 KiB device"
gdm detach c4k
gdm remove c4k
echo AT-C4K-DONE
