#!/usr/bin/env bash
# A remote leg against a local file, side by side: one gdm (the store)
# serves a tmpfs file as device vol on a UNIX socket; a second gdm serves
# `direct` (linear over the same file) and `leg` (linear over
# nbd+unix:///vol on the store's socket). fio's nbd engine runs four jobs
# on each in turn, ROUNDS rounds interleaved; MiB/s, and leg as a share
# of direct. A second table gives the CPU time both gdm processes spent
# per GiB moved (store plus front), which a shared machine's load moves
# much less than MiB/s. GDM=path uses that binary instead of building one.
# PERF=1 adds a third table: system calls and context switches per request
# in each gdm (perf stat on syscall tracepoints), to see at which hop the
# requests stop sharing wake-ups.
#   [PERF=1] bash bench/remote.sh [ROUNDS] [RUNTIME_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-3} runtime=${2:-3}
tools=(fio python3)
[ -n "${PERF:-}" ] && tools+=(perf)
need_tools bench/remote.sh "${tools[@]}"
work=$(mktemp -d /dev/shm/gdm-remote.XXXXXX)
pids=() perf_pids=()
cleanup() { kill "${pids[@]}" "${perf_pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
if [ -n "${GDM:-}" ]; then cp "$GDM" "$work/gdm"; else go build -o "$work/gdm" ./cmd/gdm; fi
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
cpu=() # one "job round direct leg" line per run: CPU ms per GiB
perf_rows=() # with PERF: one "job|round|device|daemon|counts" line per daemon and run
job() { # DEVICE BS FIO-ARGS...: MiB/s; appends CPU ms per GiB to $work/cpu
	local dev=$1 bs=$2; shift 2
	local t0 mibs
	if [ -n "${PERF:-}" ]; then
		perf_start "$work/perf.store" "${pids[0]}"
		perf_start "$work/perf.front" "${pids[1]}"
	fi
	t0=$(cpu_ticks "${pids[@]}")
	mibs=$(fio_mibs "nbd+unix:///$dev?socket=$work/front.sock" --bs="$bs" "$@")
	# ticks/s is 100; GiB moved is mibs*runtime/1024.
	echo $(( ($(cpu_ticks "${pids[@]}") - t0) * 10 * 1024 / (mibs * runtime > 0 ? mibs * runtime : 1) )) >>"$work/cpu"
	if [ -n "${PERF:-}" ]; then
		perf_stop
		# Requests: MiB/s over the run, in requests of bs. perf counted
		# a little longer than fio ran (its start and its end).
		local reqs=$((mibs * runtime * 1048576 / $(numfmt --from=iec "${bs^^}")))
		echo "$dev store $(perf_per_op "$work/perf.store" $reqs)" >>"$work/perf"
		echo "$dev front $(perf_per_op "$work/perf.front" $reqs)" >>"$work/perf"
	fi
	echo "$mibs"
}
machine_line
echo "| job | round | direct | leg | leg/direct |"
echo "| --- | ---: | ---: | ---: | ---: |"
for spec in "${bench_jobs[@]}"; do
	set -- $spec
	args=(--rw="$1" --iodepth="$3")
	for r in $(seq "$rounds"); do
		d=$(job direct "$2" "${args[@]}") l=$(job leg "$2" "${args[@]}")
		echo "| $1 $2 qd$3 | $r | $d | $l | $(( 100 * l / (d > 0 ? d : 1) ))% |"
		cpu+=("$1 $2 qd$3|$r|$(tail -2 "$work/cpu" | paste -sd'|')")
		if [ -n "${PERF:-}" ]; then
			while read -r dev daemon counts; do
				perf_rows+=("$1 $2 qd$3|$r|$dev|$daemon|$counts")
			done < <(tail -4 "$work/perf")
		fi
	done
done
echo
echo "CPU of both gdm processes, ms per GiB moved:"
echo "| job | round | direct | leg | leg/direct | leg - direct |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for row in "${cpu[@]}"; do
	IFS='|' read -r name r d l <<<"$row"
	echo "| $name | $r | $d | $l | $(( 100 * l / (d > 0 ? d : 1) ))% | $((l - d)) |"
done
[ -n "${PERF:-}" ] || exit 0
echo
echo "Per request in each gdm (PERF=1): system calls by name, context switches:"
echo "| job | round | device | gdm | counts |"
echo "| --- | ---: | --- | --- | --- |"
for row in "${perf_rows[@]}"; do
	IFS='|' read -r name r dev daemon counts <<<"$row"
	echo "| $name | $r | $dev | $daemon | $counts |"
done
