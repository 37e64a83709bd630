#!/usr/bin/env bash
# The whole test suite: installs the Debian packages the tests use (when
# missing), then gofmt, go vet, unit tests under the race detector, and the
# end-to-end tests against the built binary. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libnbd-bin python3-libnbd fio qemu-utils nbdkit nbd-client e2fsprogs prometheus curl cpio
	qemu-system-x86 linux-image-cloud-amd64 busybox-static dmsetup systemd man-db zsh cryptsetup-bin
	ceph-mon ceph-osd ceph-common qemu-block-extra nbd-server)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "== installing: ${missing[*]}"
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	else
		echo "!! not root: cannot install ${missing[*]}; tests that need them will fail" >&2
	fi
fi

export PATH="$PATH:/usr/local/go/bin"
echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
echo "== go vet"
go vet ./...
# GDM_REQUIRE_TOOLS makes a test whose client tool is missing fail, not skip.
export GDM_REQUIRE_TOOLS=1
status=0
echo "== go test -race (unit)"
go test -race -count=1 -timeout 20m $(go list ./... | grep -v /e2e) || status=1
echo "== e2e (the built binary against real clients)"
go test -count=1 -timeout 40m ./e2e/... || status=1
if [ "$status" = 0 ]; then echo "== all tests passed"; else echo "== FAILED"; fi
exit $status
