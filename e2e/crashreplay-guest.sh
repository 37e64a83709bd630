# Guest half of TestCrashReplay (crashreplay_test.go), run by the
# initramfs's /init with sh -e: gdm serves in the guest, the kernel's
# nbd-client attaches its log-writes devices over gdm's UNIX socket, and
# gdm replay checks every crash point of what was logged. It prints
# CRASH-* markers for the host to assert.
dmesg -n 1
cd /tmp
export GDM_CONTROL=/tmp/gdm.sock
gdm serve --state-dir /tmp/state --control "$GDM_CONTROL" --nbd-socket /tmp/nbd.sock \
	--metrics-listen "" --log-level warn &
# The daemon announces nothing: wait, bounded, for its sockets to appear.
i=0
until [ -S /tmp/gdm.sock ] && [ -S /tmp/nbd.sock ]; do
	i=$((i + 1)); [ $i -lt 300 ] || { echo "CRASH-FAIL gdm serve did not start"; exit 1; }
	sleep 0.1
done

# attach NAME SECTORS DEV DISK LOG: a fresh log-writes device on /dev/DEV.
attach() {
	truncate -s $(($2 * 512)) "$4"
	truncate -s 0 "$5" # an empty log file grows as the log does
	gdm create "$1" --table "0 $2 log-writes $4 $5"
	nbd-client -unix /tmp/nbd.sock "/dev/$3" -N "$1" -b 4096 -t 30
}

# detach NAME DEV: the removal logs the waiting writes and the end mark.
# nbd-client -d returns before the daemon sees the connection close, so a
# busy device is retried, a bounded number of times.
detach() {
	nbd-client -d "/dev/$2"
	i=0
	until gdm remove "$1" 2>/tmp/remove.err; do
		i=$((i + 1)); [ $i -lt 100 ] || { cat /tmp/remove.err; exit 1; }
		sleep 0.1
	done
}

# Part 1: ext4 on log-writes, a workload with fsyncs, every FUA checked.
attach lw 65536 nbd0 /tmp/disk.img /tmp/log.img
mkfs.ext4 -q -F -b 4096 -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 /dev/nbd0
gdm message lw 0 mark mkfs
mount -t ext4 /dev/nbd0 /mnt
mkdir /mnt/d
sync
i=0
while [ $i -lt 12 ]; do
	dd if=/dev/urandom of=/mnt/d/f$i bs=4k count=$((i % 4 + 1)) conv=fsync 2>/dev/null
	echo "line $i" >>/mnt/journal.txt
	sync /mnt/journal.txt
	if [ $((i % 3)) -eq 1 ]; then
		mv /mnt/d/f$((i - 1)) /mnt/d/renamed$i
		sync /mnt/d
	fi
	if [ $((i % 6)) -eq 2 ]; then
		rm /mnt/d/renamed$((i - 1))
		sync /mnt/d
	fi
	i=$((i + 1))
done
umount /mnt
detach lw nbd0
gdm replay --dump log.img >dump.txt
echo "CRASH-LOG entries=$(($(wc -l <dump.txt) - 1)) fua=$(grep -c 'FUA' dump.txt) flush=$(grep -c 'FLUSH' dump.txt)"
truncate -s 32M replay.img
gdm replay log.img replay.img --end-mark mkfs
e2fsck -fn replay.img >/dev/null
echo CRASH-MKFS-OK
# The check at each point: e2fsck -fn as it is (read-only, so it skips the
# journal), then, on a copy, what a mount after the crash would see: the
# journal recovered, then e2fsck -fn again: the second reads what the
# journal holds, which the first never does.
cat >ext4check.sh <<'EOF'
echo "CRASH-CHECK $GDM_REPLAY_ENTRY"
e2fsck -fn replay.img >fsck.out 2>&1 || { cat fsck.out; exit 1; }
cp replay.img recovered.img
rc=0
e2fsck -fy -E journal_only recovered.img >recover.out 2>&1 || rc=$?
[ $rc -le 1 ] || { cat recover.out; exit 1; }
! grep -q 'recovering journal' recover.out || echo "CRASH-RECOVERED $GDM_REPLAY_ENTRY"
e2fsck -fn recovered.img >fsck.out 2>&1 || { cat recover.out fsck.out; exit 1; }
EOF
gdm replay log.img replay.img --start-mark mkfs --check fua --fsck 'sh ext4check.sh'
cmp replay.img disk.img
echo CRASH-EXT4-OK

# Part 2: a toy "file system" of three transactions, each a data block
# (block 8+k, "DATA-k") and a commit record that covers it (block k,
# "COMMIT-k", written FUA as a journal's commit is). Done right, the data
# is flushed before its commit; the broken variant writes transaction 2's
# commit first and its data after, with no flush between, then a flush.
for k in 1 2 3; do
	printf 'DATA-%s' $k >data$k.blk && truncate -s 4096 data$k.blk
	printf 'COMMIT-%s' $k >commit$k.blk && truncate -s 4096 commit$k.blk
done
txn_right() { # txn_right DEV K
	/bin/dd if=data$2.blk of="$1" bs=4096 seek=$((8 + $2)) oflag=direct conv=fsync status=none
	/bin/dd if=commit$2.blk of="$1" bs=4096 seek=$2 oflag=direct,dsync status=none
}
txn_wrong() { # txn_wrong DEV K
	/bin/dd if=commit$2.blk of="$1" bs=4096 seek=$2 oflag=direct,dsync status=none
	/bin/dd if=data$2.blk of="$1" bs=4096 seek=$((8 + $2)) oflag=direct conv=fsync status=none
}
# /bin/dd is coreutils' (the busybox shell runs its own applet for a bare
# dd, and that one has no oflag=dsync: the FUA write).
# The crash check: a commit record whose data is not there is corruption.
cat >check.sh <<'EOF'
blk() { dd if="$1" bs=4096 skip="$2" count=1 2>/dev/null | tr -d '\000'; }
for k in 1 2 3; do
	if [ "$(blk "$1" $k)" = "COMMIT-$k" ] && [ "$(blk "$1" $((8 + k)))" != "DATA-$k" ]; then
		echo "CRASH-BAD commit $k without its data at entry $GDM_REPLAY_ENTRY"
		exit 1
	fi
done
echo "CRASH-POINT-OK $GDM_REPLAY_ENTRY"
EOF
# toyfs NAME DEV MIDDLE: transactions 1 and 3 right, 2 done by MIDDLE.
toyfs() {
	attach "$1" 2048 "$2" "/tmp/$1.img" "/tmp/$1.log"
	txn_right "/dev/$2" 1
	$3 "/dev/$2" 2
	txn_right "/dev/$2" 3
	detach "$1" "$2"
	gdm replay --dump "$1.log" | sed "s/^/CRASH-DUMP-$1 /"
	truncate -s 1M "$1.replay"
}
toyfs good nbd1 txn_right
gdm replay good.log good.replay --check fua --fsck 'sh check.sh good.replay'
cmp good.replay good.img
echo CRASH-GOOD-OK
toyfs bad nbd2 txn_wrong
rc=0
gdm replay bad.log bad.replay --check fua --fsck 'sh check.sh bad.replay' || rc=$?
echo "CRASH-BAD-EXIT $rc"
# The replay stopped at the bad point: transaction 2's data and all of
# transaction 3 are not on the replayed device.
[ "$(dd if=bad.replay bs=4096 skip=10 count=1 2>/dev/null | tr -d '\000')" = "" ]
[ "$(dd if=bad.replay bs=4096 skip=3 count=1 2>/dev/null | tr -d '\000')" = "" ]
echo CRASH-BAD-STOPPED
