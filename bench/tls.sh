#!/usr/bin/env bash
# NBD over TLS against plain, for gdm and nbdkit side by side: fio's nbd
# engine over UNIX sockets on a 1 GiB tmpfs file, four jobs, each server
# plain and with TLS (STARTTLS, x509, TLS 1.3) in turn, ROUNDS rounds
# interleaved; MiB/s per job. Certificates are made here with openssl.
#   bash bench/tls.sh [ROUNDS] [RUNTIME_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-3} runtime=${2:-3}
need_tools bench/tls.sh fio nbdkit openssl python3
work=$(mktemp -d /dev/shm/gdm-tls.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
pki=$work/pki home=$work/home
mkdir -p "$pki" "$home/.pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
	-keyout "$pki/ca-key.pem" -out "$pki/ca-cert.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
	-keyout "$pki/server-key.pem" -out "$work/server.csr" 2>/dev/null
openssl x509 -req -in "$work/server.csr" -CA "$pki/ca-cert.pem" -CAkey "$pki/ca-key.pem" -days 1 \
	-extfile <(printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n') -out "$pki/server-cert.pem" 2>/dev/null
cp -r "$pki" "$home/.pki/libnbd" # fio lets libnbd read only its default certificate directory
go build -o "$work/gdm" ./cmd/gdm
fio --name=fill --filename="$work/disk.img" --rw=write --bs=1m --size=1g --ioengine=psync >/dev/null
"$work/gdm" serve --state-dir "$work/state" --control "$work/c.sock" --nbd-socket "$work/g.sock" --metrics-listen '' \
	--tls on --tls-cert "$pki/server-cert.pem" --tls-key "$pki/server-key.pem" >"$work/gdm.log" 2>&1 &
pids+=($!)
nbdkit -f -U "$work/k.sock" --tls=on --tls-certificates="$pki" -t 8 file "$work/disk.img" >"$work/nbdkit.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/c.sock" ] && [ -S "$work/k.sock" ] && break; sleep 0.1; done
"$work/gdm" --control "$work/c.sock" create bench --table "0 2097152 linear $work/disk.img 0" >/dev/null
job() { HOME=$home fio_mibs "$@"; } # fio reads its certificates under $HOME
machine_line
echo "| job | round | gdm | gdm TLS | nbdkit | nbdkit TLS |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for spec in "${bench_jobs[@]}"; do
	set -- $spec
	args=(--rw="$1" --bs="$2" --iodepth="$3")
	for r in $(seq "$rounds"); do
		echo "| $1 $2 qd$3 | $r | $(job "nbd+unix:///bench?socket=$work/g.sock" "${args[@]}") | $(job "nbds+unix:///bench?socket=$work/g.sock" "${args[@]}") | $(job "nbd+unix:///?socket=$work/k.sock" "${args[@]}") | $(job "nbds+unix:///?socket=$work/k.sock" "${args[@]}") |"
	done
done
