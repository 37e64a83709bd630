#!/usr/bin/env bash
# A/B of gdm binaries over block devices with real latency: one or two
# loop devices with direct I/O over 512 MiB files of random data in DIR
# (default /var/tmp: put it on a real disk), a linear table over the
# first, or with -striped a striped one over both (2 legs, 64 KiB
# chunks), or with -crypt an aes-xts-plain64 crypt table over the first
# (a fixed test key), or with -snapshot a persistent snapshot (4 KiB
# chunks) of the first with the second as its COW device, or with
# -origin a snapshot-origin of the first (no snapshot); fio's nbd
# engine runs random reads and writes (4 KiB at qd32 unless -bs and -qd
# say otherwise) for 4 s against each binary in turn, round by round.
# Needs root, losetup, fio and jq.
#   bash bench/blockdev-ab.sh [-striped|-crypt|-snapshot|-origin] [-dir DIR] [-rounds N] [-bs SIZE] [-qd N] BIN...
set -euo pipefail
. "$(dirname "$0")/lib.sh"
striped="" crypt="" snapshot="" origin="" dir=/var/tmp rounds=3 bs=4k qd=32
while [ $# -gt 0 ]; do
	case $1 in
	-striped) striped=1 ;;
	-crypt) crypt=1 ;;
	-snapshot) snapshot=1 ;;
	-origin) origin=1 ;;
	-dir) dir=$2; shift ;;
	-rounds) rounds=$2; shift ;;
	-bs) bs=$2; shift ;;
	-qd) qd=$2; shift ;;
	*) break ;;
	esac
	shift
done
[ $# -gt 0 ] || { sed -n 2,13p "$0" >&2; exit 2; }
work=$(mktemp -d /dev/shm/gdm-blockdev-ab.XXXXXX)
imgs=() loops=() pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	wait 2>/dev/null
	for l in "${loops[@]}"; do losetup -d "$l"; done
	rm -rf "$work" "${imgs[@]}"
}
trap cleanup EXIT
for i in 1 ${striped:+2} ${snapshot:+2}; do
	img=$(mktemp "$dir/gdm-blockdev-ab.XXXXXX")
	imgs+=("$img")
	if [ -n "$snapshot" ] && [ "$i" = 2 ]; then
		# The COW device: zeros (a new store), room for every chunk
		# of the origin twice over, so that the writes never fill it.
		truncate -s 2G "$img"
	else
		dd if=/dev/urandom of="$img" bs=1M count=512 oflag=direct status=none
	fi
	loops+=("$(losetup --find --show --direct-io=on "$img")")
done
table="0 1048576 linear ${loops[0]} 0"
[ -n "$striped" ] && table="0 2097152 striped 2 128 ${loops[0]} 0 ${loops[1]} 0"
if [ -n "$snapshot" ]; then
	table="0 1048576 snapshot ${loops[0]} ${loops[1]} P 8"
fi
[ -n "$origin" ] && table="0 1048576 snapshot-origin ${loops[0]}"
[ -n "$crypt" ] && table="0 1048576 crypt aes-xts-plain64 $(printf '%064x' 42) 0 ${loops[0]} 0"
uri="nbd+unix:///bench?socket=$work/s.sock"
echo "$(machine_line); table: $table; fio bs=$bs iodepth=$qd"
for r in $(seq "$rounds"); do
	for rw in randread randwrite; do
		line="round $r $rw:"
		for bin in "$@"; do
			serve_table "$bin" "$work" "$table"
			fio --name=j --ioengine=nbd --uri="$uri" --rw=$rw --bs=$bs --iodepth=$qd --size=512m --time_based --runtime=4 \
				--output-format=json --output="$work/out.json" >/dev/null
			line="$line $(basename "$bin") $(fio_iops "$work/out.json")"
			kill $pid
			wait $pid 2>/dev/null || true
			pid=""
		done
		echo "$line"
	done
done
