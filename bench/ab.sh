#!/usr/bin/env bash
# A/B of gdm binaries (and peers) by cost per request: for each round and
# each server in turn, serve a tmpfs file, run one fio job against it, and
# count the server's syscalls, context switches and CPU (perf stat -p) per
# request. On a shared machine throughput swings several-fold with the
# neighbours' load; what a server spends per request swings much less, so
# interleaved pairs of these tell a change's effect where bench/run.sh's
# table cannot.
#   bash bench/ab.sh [-tcp] [-rounds N] [-runtime S] [-metrics] SERVER... -- FIO-ARGS...
# SERVER: a gdm binary's path, or go-nbd or nbdkit. Example:
#   bash bench/ab.sh -rounds 3 /tmp/gdm.main /tmp/gdm.new nbdkit -- --rw=randwrite --bs=4k --iodepth=32
# A gdm SERVER may be a script that sets the environment and execs gdm
# (its pid stays the one measured), e.g. to try a GODEBUG or GOMAXPROCS.
# Each row also shows the load average before its fio run; a summary
# (bench/ab-summary.awk) ends the output: medians, and each round's ratio
# to the first SERVER, so list the reference first.
set -euo pipefail
cd "$(dirname "$0")/.."
tcp="" rounds=3 runtime=4 metrics=""
servers=()
while [ $# -gt 0 ]; do
	case $1 in
	-tcp) tcp=1 ;;
	-rounds) rounds=$2; shift ;;
	-runtime) runtime=$2; shift ;;
	-metrics) metrics=1 ;;
	--) shift; break ;;
	*) servers+=("$1") ;;
	esac
	shift
done
[ ${#servers[@]} -gt 0 ] && [ $# -gt 0 ] || { sed -n 2,16p "$0" >&2; exit 2; }
for tool in fio perf jq; do
	command -v $tool >/dev/null || { echo "bench/ab.sh needs $tool (apt-get install -y fio linux-perf jq)" >&2; exit 1; }
done
work=$(mktemp -d /dev/shm/gdm-ab.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/gonbd" ./bench/gonbd
fio --name=fill --filename="$work/disk.img" --rw=write --bs=1m --size=1g --ioengine=psync >/dev/null
if [ -n "$tcp" ]; then
	addr=127.0.0.1:10899 uri="nbd://127.0.0.1:10899/bench"
else
	addr=$work/s.sock uri="nbd+unix:///bench?socket=$work/s.sock"
fi
start() { # start SERVER: sets pid
	rm -rf "$work/state" "$work"/*.sock
	case $1 in
	go-nbd)
		if [ -n "$tcp" ]; then "$work/gonbd" -file "$work/disk.img" -listen "$addr" 2>/dev/null & else
			"$work/gonbd" -file "$work/disk.img" -socket "$addr" 2>/dev/null & fi
		pid=$! ;;
	nbdkit)
		if [ -n "$tcp" ]; then nbdkit -f -i 127.0.0.1 -p "${addr#*:}" --exportname=bench file "$work/disk.img" & else
			nbdkit -f -U "$addr" --exportname=bench file "$work/disk.img" & fi
		pid=$! ;;
	*)
		local listen=(--nbd-socket "$addr" --nbd-listen "")
		[ -n "$tcp" ] && listen=(--nbd-socket "" --nbd-listen "$addr")
		"$1" serve --state-dir "$work/state" --control "$work/c.sock" "${listen[@]}" \
			--metrics-listen "${metrics:+127.0.0.1:0}" --log-level warn &
		pid=$!
		until "$1" create bench --control "$work/c.sock" --table "0 2097152 linear $work/disk.img 0" >/dev/null 2>&1; do
			kill -0 $pid || exit 1
			sleep 0.1
		done ;;
	esac
	until fio --name=probe --ioengine=nbd --uri="$uri" --size=4k --rw=read --bs=4k --output=/dev/null >/dev/null 2>&1; do
		kill -0 $pid || exit 1
		sleep 0.1
	done
}
printf "%-5s %-28s %9s %10s %9s %11s %5s\n" round server IOPS "syscalls/r" "ctxsw/r" "CPU us/r" load
for r in $(seq "$rounds"); do
	for s in "${servers[@]}"; do
		start "$s"
		perf stat -x, -e raw_syscalls:sys_enter,context-switches,cpu-clock -p $pid -o "$work/stat" &
		perfpid=$!
		load=$(cut -d' ' -f1 /proc/loadavg)
		# --group_reporting: with --numjobs, jobs[0] is then every job's sum.
		fio --name=ab --ioengine=nbd --uri="$uri" --size=1g --time_based --runtime="${runtime}s" \
			--group_reporting --output-format=json "$@" 2>/dev/null | sed -n '/^{/,$p' >"$work/fio.json"
		kill -INT $perfpid; wait $perfpid 2>/dev/null || true
		kill $pid; wait $pid 2>/dev/null || true
		pid=""
		ios=$(jq '.jobs[0].read.total_ios + .jobs[0].write.total_ios' "$work/fio.json")
		iops=$(jq '.jobs[0].read.iops + .jobs[0].write.iops' "$work/fio.json")
		awk -F, -v r="$r" -v s="$(basename "$s")" -v n="$ios" -v iops="$iops" -v load="$load" '
			$3 == "raw_syscalls:sys_enter" { sc = $1 } $3 == "context-switches" { cs = $1 } $3 == "cpu-clock" { cpu = $1 }
			END { printf "%-5s %-28s %9.0f %10.2f %9.2f %11.1f %5s\n", r, s, iops, sc/n, cs/n, cpu/n*1000, load }' "$work/stat" |
			tee -a "$work/rows"
	done
done
# Medians over the rounds, and each round's ratio to the first server in
# that round (its median, lowest and highest): on a shared machine the
# ratios of servers run seconds apart are what to compare.
echo
awk -f bench/ab-summary.awk "$work/rows"
