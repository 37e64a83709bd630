#!/usr/bin/env bash
# gdm over a block device: O_DIRECT (gdm's default for block devices) and
# --block-page-cache, interleaved, round by round, and fio straight on the
# device (libaio, O_DIRECT) for what the device itself does. The block
# device is a loop device over a 1 GiB file (needs root and losetup): on
# tmpfs by default, where the loop device's work is CPU; with -dir DIR,
# a file of random data in DIR, read and written by the loop device with
# direct I/O, so that requests reach DIR's disk and take its time. Each
# job is fio's nbd engine for 4 s against a linear table over the loop
# device; each line gives the job's IOPS and the CPU ticks gdm spent.
#   bash bench/blockdev.sh [-dir DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
dir_and_rounds "" "$@"
need_tools bench/blockdev.sh fio jq losetup
work=$(mktemp -d /dev/shm/gdm-blockdev.XXXXXX)
pid="" loop=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	wait 2>/dev/null
	[ -n "$loop" ] && losetup -d "$loop"
	[ -n "$dir" ] && rm -f "${img:-}"
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/gdm" ./cmd/gdm
img=$work/disk.img where=tmpfs loopdio=()
if [ -n "$dir" ]; then
	img=$(mktemp "$dir/gdm-blockdev.XXXXXX")
	where="a file in $dir, direct I/O" loopdio=(--direct-io=on)
	dd if=/dev/urandom of="$img" bs=1M count=1024 oflag=direct status=none
else
	fio --name=fill --filename="$img" --rw=write --bs=1m --size=1g --ioengine=psync >/dev/null
fi
loop=$(losetup --find --show "${loopdio[@]}" "$img")
uri="nbd+unix:///bench?socket=$work/s.sock"
echo "$(machine_line); $loop over $where"
for r in $(seq "$rounds"); do
	for job in "${bench_jobs[@]}"; do
		fio_on_row "$r" "$loop" $job "$work"
	done
	for mode in direct page-cache; do
		extra=()
		[ $mode = page-cache ] && extra=(--block-page-cache)
		serve_table "$work/gdm" "$work" "0 2097152 linear $loop 0" "${extra[@]}"
		for job in "${bench_jobs[@]}"; do
			gdm_row "$r" $mode $job "$uri" "$work"
		done
		kill $pid
		wait $pid 2>/dev/null || true
		pid=""
	done
done
