#!/usr/bin/env bash
# Side-by-side NBD server benchmark: the same tmpfs file served by gdm, by
# go-nbd's own server, by nbdkit's file plugin and by qemu-nbd, each driven
# by the same fio jobs (--ioengine=nbd). Prints a Markdown table for the README.
#   bash bench/run.sh [--runtime 10s] [--size 1073741824]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v fio >/dev/null && command -v nbdkit >/dev/null && command -v qemu-nbd >/dev/null || {
	echo "bench needs fio, nbdkit and qemu-nbd (apt-get install -y fio nbdkit qemu-utils)" >&2
	exit 1
}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/gdm" ./cmd/gdm
go build -o "$bin/gonbd" ./bench/gonbd
go build -o "$bin/fiobench" ./bench/fiobench
"$bin/fiobench" -gdm "$bin/gdm" -gonbd "$bin/gonbd" "$@"
