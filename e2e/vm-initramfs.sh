#!/usr/bin/env bash
# Builds a small initramfs for the kernel-client test (vm_test.go) from the
# Debian packages on this machine: busybox as the shell, nbd-client, mke2fs,
# e2fsck and fio with the libraries ldd names, and the modules the guest
# needs (virtio net and nbd). /init runs GUEST_SCRIPT, prints GDM-VM-OK or
# GDM-VM-FAIL, and powers off. Nothing here is committed as a binary.
#   vm-initramfs.sh OUT_DIR GUEST_SCRIPT   ->  OUT_DIR/initrd.gz, OUT_DIR/vmlinuz
# The oracle (oracle_test.go) adds to it through the environment:
#   VM_BASE_PROGS="P..."   instead of nbd-client, mke2fs, e2fsck and fio
#   VM_PROGS="P..."        more programs for /bin (with their ldd libraries;
#                          static ones as they are)
#   VM_MODULES="M..."      more modules, each after the ones modules.dep
#                          says it needs (dm-zero brings dm-mod)
#   VM_MODULE_ARGS="M=A;." insmod arguments, e.g. "nbd=nbds_max=64"
set -euo pipefail
out=$(realpath "$1")
guest=$(realpath "$2")
kver=$(ls /lib/modules | grep -m1 cloud-amd64 || true)
[ -n "$kver" ] || { echo "no linux-image-cloud-amd64 installed" >&2; exit 1; }
root="$out/root"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,lib,lib64,dev,proc,sys,tmp,mnt,etc,modules}

# busybox links its applets itself, in one process (hundreds of ln
# processes cost a minute on a loaded machine); its links name the host's
# /usr/bin/busybox, which the guest has as a link to /bin/busybox.
cp /usr/bin/busybox "$root/bin/busybox"
mkdir -p "$root/usr/bin"
ln -s /bin/busybox "$root/usr/bin/busybox"
/usr/bin/busybox --install -s "$root/bin"
for prog in ${VM_BASE_PROGS-/usr/sbin/nbd-client /usr/sbin/mke2fs /usr/sbin/e2fsck /usr/bin/fio} ${VM_PROGS:-}; do
	rm -f "$root/bin/$(basename "$prog")" # busybox may have an applet of that name
	cp "$prog" "$root/bin/$(basename "$prog")"
	{ ldd "$prog" 2>/dev/null || true; } | awk '/=>/ {print $3} /ld-linux/ {print $1}' | while read -r lib; do
		[ -f "$lib" ] || continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
done
[ ! -e "$root/bin/mke2fs" ] || ln -sf mke2fs "$root/bin/mkfs.ext4"
[ ! -e "$root/bin/e2fsck" ] || ln -sf e2fsck "$root/bin/fsck.ext4"
mkdir -p "$root/etc"
: > "$root/etc/mtab"

# modules: the base list, then VM_MODULES, each preceded by what
# modules.dep says it needs (deepest first), each once; /modules/list is the
# insmod order with each module's arguments.
declare -A have=() args=()
IFS=';' read -ra pairs <<<"${VM_MODULE_ARGS:-}"
for p in "${pairs[@]}"; do [ -n "$p" ] && args[${p%%=*}]=${p#*=}; done
order=()
add_module() { # add_module PATH_IN_MODULES_DEP
	local rel=$1 name deps d
	name=$(basename "$rel"); name=${name%%.ko*}
	[ -z "${have[$name]:-}" ] || return 0
	deps=$(grep -m1 "^$rel:" "/lib/modules/$kver/modules.dep" | cut -d: -f2)
	for d in $(echo $deps | tr ' ' '\n' | tac); do add_module "$d"; done
	have[$name]=1
	case "$rel" in
	*.xz) xz -dc "/lib/modules/$kver/$rel" > "$root/modules/$name.ko" ;;
	*.zst) zstd -qdc "/lib/modules/$kver/$rel" > "$root/modules/$name.ko" ;;
	*) cp "/lib/modules/$kver/$rel" "$root/modules/$name.ko" ;;
	esac
	order+=("$name")
}
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net nbd ${VM_MODULES:-}; do
	rel=$(grep -m1 -E "(^|/)$m\.ko[^:]*:" "/lib/modules/$kver/modules.dep" | cut -d: -f1)
	[ -n "$rel" ] || { echo "module $m not in modules.dep" >&2; exit 1; }
	add_module "$rel"
done
for m in "${order[@]}"; do echo "$m ${args[$m]:-}"; done > "$root/modules/list"
cp "$guest" "$root/guest.sh"
cat > "$root/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r m margs; do
	insmod /modules/$m.ko $margs || echo "insmod $m failed"
done < /modules/list
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
echo GDM-VM-START
if sh -e /guest.sh; then echo GDM-VM-OK; else echo GDM-VM-FAIL; fi
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$out/initrd.gz")
cp "/boot/vmlinuz-$kver" "$out/vmlinuz"
rm -rf "$root"
