#!/usr/bin/env bash
# gdm over a regular file on a disk: through the page cache (the default)
# and with --file-direct (O_DIRECT and Linux AIO), interleaved, round by
# round, and fio straight on the file (libaio, O_DIRECT) for what the
# disk does by itself. The file is 1 GiB of random data in DIR (default
# /var/tmp; it must be on a filesystem with O_DIRECT, not tmpfs). Before
# each job the file's cached pages are dropped (posix_fadvise DONTNEED),
# so the page cache starts cold, as for data a client has not read
# lately; a page-cache job then warms what it reads during its 4 s. Each
# line gives the job's IOPS and the CPU ticks gdm spent.
#   bash bench/filedirect.sh [-dir DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
dir_and_rounds /var/tmp "$@"
need_tools bench/filedirect.sh fio jq python3
work=$(mktemp -d /dev/shm/gdm-filedirect.XXXXXX)
img=$(mktemp "$dir/gdm-filedirect.XXXXXX")
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	wait 2>/dev/null
	rm -f "$img"
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/gdm" ./cmd/gdm
dd if=/dev/urandom of="$img" bs=1M count=1024 oflag=direct status=none
# drop: the file's pages leave the page cache (written back first).
drop() {
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$img"
}
uri="nbd+unix:///bench?socket=$work/s.sock"
echo "$(machine_line); a file in $dir ($(df --output=fstype "$dir" | tail -1))"
for r in $(seq "$rounds"); do
	for job in "${bench_jobs[@]}"; do
		fio_on_row "$r" "$img" $job "$work"
	done
	for mode in file-direct page-cache; do
		extra=()
		[ $mode = file-direct ] && extra=(--file-direct)
		serve_table "$work/gdm" "$work" "0 2097152 linear $img 0" "${extra[@]}"
		for job in "${bench_jobs[@]}"; do
			drop
			gdm_row "$r" $mode $job "$uri" "$work"
		done
		kill $pid
		wait $pid 2>/dev/null || true
		pid=""
	done
done
