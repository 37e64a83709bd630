#!/usr/bin/env bash
# A single-node Ceph cluster for tests: one monitor and one OSD, no mgr,
# no systemd, no authentication, everything (config, data, logs, sockets,
# pid files) under one directory, listening on 127.0.0.1 only.
#
#   ceph-cluster.sh start DIR [PORT]   make and start a cluster in DIR (the
#                                      monitor on 127.0.0.1:PORT, 3300 by
#                                      default), create pool "rbd"; prints
#                                      DIR/ceph.conf
#   ceph-cluster.sh stop DIR           kill its daemons (SIGTERM, then
#                                      SIGKILL) and wait until they are gone
#
# Clients then use `-c DIR/ceph.conf` (ceph, rbd, rados) or qemu's
# `rbd:POOL/IMAGE:conf=DIR/ceph.conf`. Every wait is bounded: a cluster that
# does not come up within about a minute makes start fail (and prints the
# daemons' logs), after it stopped what it started.
set -euo pipefail

usage() {
	echo "usage: $0 start DIR [PORT] | stop DIR" >&2
	exit 2
}

# stop_cluster kills the daemons whose pid files are in $1 with SIGKILL (the
# data is in memory and thrown away: nothing to shut down cleanly, and a
# SIGTERM'd OSD first waits for the monitor to mark it down) and waits, at
# most 10 s, until they are gone.
stop_cluster() {
	local dir=$1 pids=() alive pid f i
	for f in "$dir"/run/*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f" 2>/dev/null || true)
		# Only a daemon of this cluster: its command line names our conf.
		if [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$dir/ceph.conf"; then
			pids+=("$pid")
		fi
	done
	((${#pids[@]})) || return 0
	kill -KILL "${pids[@]}" 2>/dev/null || true
	for i in $(seq 100); do
		alive=()
		for pid in "${pids[@]}"; do
			# A killed child of ours that is not reaped yet is a zombie: gone.
			[ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && alive+=("$pid")
		done
		((${#alive[@]})) || return 0
		sleep 0.1
	done
	echo "ceph daemons ${alive[*]} did not exit" >&2
	return 1
}

# fail prints the daemons' logs, stops the cluster and exits 1.
fail() {
	echo "ceph-cluster: $*" >&2
	for f in "$dir"/log/*.log "$dir"/log/*.err; do
		[ -e "$f" ] || continue
		echo "== $f (last 30 lines)" >&2
		tail -n 30 "$f" >&2
	done
	stop_cluster "$dir" || true
	exit 1
}

# ceph_cli runs a ceph client command against the cluster, bounded in time.
ceph_cli() {
	timeout 60 "$@" -c "$dir/ceph.conf"
}

start_cluster() {
	local port=${3:-3300} fsid osd_uuid i
	mkdir -p "$dir"/{mon,osd,run,log}
	fsid=$(cat /proc/sys/kernel/random/uuid)
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
osd crush chooseleaf type = 0
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
mon data = $dir/mon/\$name
osd data = $dir/osd/\$name
osd objectstore = memstore
memstore device bytes = 1073741824
osd memory target = 1073741824
client mount timeout = 30
rados mon op timeout = 30
rados osd op timeout = 30
mon warn on pool no redundancy = false
# A full disk of a CI runner must not stop the monitor (it does below 5%).
mon data avail crit = 0

[client]
# Clients (ceph, rbd, qemu-nbd) share no admin socket with each other.
admin socket =
EOF
	[ "$port" -ge 1 ] 2>/dev/null || fail "bad port $port"
	timeout 30 monmaptool --create --add a "v2:127.0.0.1:$port" --fsid "$fsid" "$dir/monmap" >/dev/null ||
		fail "monmaptool failed"
	timeout 60 ceph-mon -c "$dir/ceph.conf" --mkfs -i a --monmap "$dir/monmap" --keyring /dev/null ||
		fail "ceph-mon --mkfs failed"
	timeout 30 ceph-mon -c "$dir/ceph.conf" -i a 2>>"$dir/log/start.err" || fail "ceph-mon did not start"
	ceph_cli ceph osd new "$osd_uuid" 0 >/dev/null || fail "ceph osd new failed"
	mkdir -p "$dir/osd/osd.0"
	timeout 60 ceph-osd -c "$dir/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>"$dir/log/osd-mkfs.err" ||
		fail "ceph-osd --mkfs failed: $(cat "$dir/log/osd-mkfs.err")"
	timeout 30 ceph-osd -c "$dir/ceph.conf" -i 0 2>>"$dir/log/start.err" || fail "ceph-osd did not start"
	for i in $(seq 300); do
		ceph_cli ceph osd stat -f json 2>/dev/null | grep -q '"num_up_osds":1' && break
		((i < 300)) || fail "the OSD is not up after 60 s"
		sleep 0.2
	done
	ceph_cli ceph osd pool create rbd 8 >/dev/null 2>&1 || fail "ceph osd pool create rbd failed"
	ceph_cli rbd pool init rbd || fail "rbd pool init failed"
	echo "$dir/ceph.conf"
}

(($# >= 2)) || usage
dir=$(realpath -m "$2")
case $1 in
start) start_cluster "$@" ;;
stop) stop_cluster "$dir" ;;
*) usage ;;
esac
