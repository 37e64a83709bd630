# Shared by bench/remote.sh, bench/tls.sh, the blockdev scripts and
# bench/filedirect.sh (sourced, not run): the check for their tools, the
# -dir and rounds arguments, the fio job that prints MiB/s, the machine
# line, the four jobs of their tables, CPU time of processes, a gdm
# serving one table, and the rows of a job on a device and through gdm.

# need_tools SCRIPT TOOL...: exits, saying which, unless every TOOL is on
# PATH.
need_tools() {
	local script=$1 tool
	shift
	for tool in "$@"; do
		command -v "$tool" >/dev/null || { echo "$script needs $tool" >&2; exit 1; }
	done
}

# dir_and_rounds DEFAULT [-dir DIR] [ROUNDS]: sets dir (DIR, else DEFAULT)
# and rounds (ROUNDS, else 3), for the scripts whose device lies in DIR.
dir_and_rounds() {
	dir=$1
	shift
	if [ "${1:-}" = -dir ]; then
		dir=$2
		shift 2
	fi
	rounds=${1:-3}
}

# bench_jobs: the four jobs every table runs, "RW BS IODEPTH" each.
bench_jobs=("randread 4k 32" "randwrite 4k 32" "read 1m 8" "write 1m 8")

# fio_mibs URI FIO-ARGS...: one time-based fio job (nbd engine, 1 GiB, for
# $runtime seconds) on URI; prints its MiB/s, reads and writes together.
fio_mibs() {
	local uri=$1; shift
	fio --name=j --ioengine=nbd --uri="$uri" "$@" --time_based --runtime="$runtime" --size=1g \
		--output-format=json 2>/dev/null | python3 -c 'import json,sys
t = sys.stdin.read(); j = json.loads(t[t.index("{"):])["jobs"][0]
print("%.0f" % ((j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 1048576))'
}

# fio_iops JSON: the IOPS of the one job in fio's JSON output file,
# reads and writes together.
fio_iops() {
	jq '(.jobs[0].read.iops + .jobs[0].write.iops)|floor' "$1"
}

# machine_line: what the numbers were measured on, with the load.
machine_line() {
	echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, Linux $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
}

# cpu_ticks PID...: user plus system CPU time of the processes so far, in
# clock ticks (/proc/PID/stat fields 14 and 15).
cpu_ticks() {
	local t=0 pid f
	for pid in "$@"; do
		read -ra f <"/proc/$pid/stat"
		t=$((t + f[13] + f[14]))
	done
	echo $t
}

# Per-request counts of what each hop costs (bench/remote.sh PERF=1): the
# system calls a hop makes and its context switches, counted by perf on
# the tracepoints, which costs little next to strace. Several per request
# where the direct path has a fraction of one say the requests cross the
# hop one at a time, each with a wake-up of its own.
perf_events=context-switches
for s in read writev epoll_pwait futex nanosleep; do perf_events+=,syscalls:sys_enter_$s; done

# perf_start OUT PID: counts perf_events on PID into OUT until perf_stop.
perf_start() {
	perf stat -x, -e "$perf_events" -o "$1" -p "$2" &
	perf_pids+=($!)
}

# perf_stop: ends the counts perf_start began (perf writes them on SIGINT).
perf_stop() {
	kill -INT "${perf_pids[@]}" 2>/dev/null || true
	wait "${perf_pids[@]}" 2>/dev/null || true
	perf_pids=()
}

# perf_per_op OUT REQUESTS: the counts in OUT per request, "name n.nn" each.
perf_per_op() {
	awk -F, -v n="$2" '$3 != "" && $1 ~ /^[0-9]/ { e = $3; sub("syscalls:sys_enter_", "", e); sub("context-switches", "ctxsw", e)
		printf "%s %.2f ", e, (n > 0 ? $1 / n : 0) } END { print "" }' "$1"
}

# serve_table BIN WORK TABLE [SERVE-ARGS...]: gdm BIN serving TABLE as
# device "bench" on the UNIX socket WORK/s.sock (state and control in
# WORK), once it is loaded; sets pid.
serve_table() {
	local bin=$1 work=$2 table=$3
	shift 3
	rm -rf "$work/state" "$work"/*.sock
	"$bin" serve "$@" --state-dir "$work/state" --control "$work/c.sock" --nbd-socket "$work/s.sock" \
		--nbd-listen "" --metrics-listen "" --log-level error --io-flusher=false &
	pid=$!
	until "$bin" create bench --control "$work/c.sock" --table "$table" >/dev/null 2>&1; do
		kill -0 $pid || exit 1
		sleep 0.1
	done
}

# fio_on_row ROUND PATH RW BS QD WORK: one 4 s fio job straight on PATH
# (libaio, O_DIRECT), what the device or file does by itself; prints its
# row. gdm_row ROUND MODE RW BS QD URI WORK: the same job through gdm
# (pid $pid) on URI, with gdm's CPU ticks and the load.
fio_on_row() {
	local r=$1 path=$2 rw=$3 bs=$4 qd=$5 work=$6
	fio --name=j --filename="$path" --direct=1 --ioengine=libaio --rw=$rw --bs=$bs --iodepth=$qd --size=1g \
		--time_based --runtime=4 --output-format=json --output="$work/out.json" >/dev/null
	printf "round %d %-11s %-9s %-3s qd%-2s IOPS %7d  (fio on it, O_DIRECT)\n" "$r" fio $rw $bs $qd "$(fio_iops "$work/out.json")"
}

gdm_row() {
	local r=$1 mode=$2 rw=$3 bs=$4 qd=$5 uri=$6 work=$7 t0 t1
	t0=$(cpu_ticks $pid)
	fio --name=j --ioengine=nbd --uri="$uri" --rw=$rw --bs=$bs --iodepth=$qd --size=1g --time_based --runtime=4 \
		--output-format=json --output="$work/out.json" >/dev/null
	t1=$(cpu_ticks $pid)
	printf "round %d %-11s %-9s %-3s qd%-2s IOPS %7d  gdm CPU ticks %4d  load %s\n" "$r" "$mode" $rw $bs $qd \
		"$(fio_iops "$work/out.json")" $((t1 - t0)) "$(cut -d' ' -f1 /proc/loadavg)"
}
