#!/usr/bin/env bash
# A remote leg against a local file, side by side: one gdm (the store)
# serves a tmpfs file as device vol on a UNIX socket; a second gdm serves
# `direct` (linear over the same file) and `leg` (linear over
# nbd+unix:///vol on the store's socket). fio's nbd engine runs four jobs
# on each in turn, ROUNDS rounds interleaved; MiB/s, and leg as a share
# of direct.
#   bash bench/remote.sh [ROUNDS] [RUNTIME_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} runtime=${2:-3}
for tool in fio python3; do
	command -v $tool >/dev/null || { echo "bench/remote.sh needs $tool" >&2; exit 1; }
done
work=$(mktemp -d /dev/shm/gdm-remote.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/gdm" ./cmd/gdm
fio --name=fill --filename="$work/disk.img" --rw=write --bs=1m --size=1g --ioengine=psync >/dev/null
serve() { # NAME: a gdm with its files under $work/NAME
	"$work/gdm" serve --state-dir "$work/$1" --control "$work/$1.ctl" --nbd-socket "$work/$1.sock" \
		--metrics-listen '' >"$work/$1.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do [ -S "$work/$1.ctl" ] && return; sleep 0.1; done
	echo "gdm $1 did not start" >&2; exit 1
}
serve store
serve front
"$work/gdm" --control "$work/store.ctl" create vol --table "0 2097152 linear $work/disk.img 0" >/dev/null
"$work/gdm" --control "$work/front.ctl" create direct --table "0 2097152 linear $work/disk.img 0" >/dev/null
"$work/gdm" --control "$work/front.ctl" create leg --table "0 2097152 linear nbd+unix:///vol?socket=$work/store.sock 0" >/dev/null
job() { # DEVICE FIO-ARGS...: MiB/s
	local dev=$1; shift
	fio --name=j --ioengine=nbd --uri="nbd+unix:///$dev?socket=$work/front.sock" "$@" --time_based \
		--runtime="$runtime" --size=1g --output-format=json 2>/dev/null | python3 -c 'import json,sys
t = sys.stdin.read(); j = json.loads(t[t.index("{"):])["jobs"][0]
print("%.0f" % ((j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 1048576))'
}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, Linux $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| job | round | direct | leg | leg/direct |"
echo "| --- | ---: | ---: | ---: | ---: |"
for spec in "randread 4k 32" "randwrite 4k 32" "read 1m 8" "write 1m 8"; do
	set -- $spec
	args=(--rw="$1" --bs="$2" --iodepth="$3")
	for r in $(seq "$rounds"); do
		d=$(job direct "${args[@]}") l=$(job leg "${args[@]}")
		echo "| $1 $2 qd$3 | $r | $d | $l | $(( 100 * l / (d > 0 ? d : 1) ))% |"
	done
done
