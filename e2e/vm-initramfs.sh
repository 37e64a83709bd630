#!/usr/bin/env bash
# Builds a small initramfs for the kernel-client test (vm_test.go) from the
# Debian packages on this machine: busybox as the shell, nbd-client, mke2fs,
# e2fsck and fio with the libraries ldd names, and the modules the guest
# needs (virtio net and nbd). /init runs GUEST_SCRIPT, prints GDM-VM-OK or
# GDM-VM-FAIL, and powers off. Nothing here is committed as a binary.
#   vm-initramfs.sh OUT_DIR GUEST_SCRIPT   ->  OUT_DIR/initrd.gz, OUT_DIR/vmlinuz
set -euo pipefail
out=$(realpath "$1")
guest=$(realpath "$2")
kver=$(ls /lib/modules | grep -m1 cloud-amd64 || true)
[ -n "$kver" ] || { echo "no linux-image-cloud-amd64 installed" >&2; exit 1; }
root="$out/root"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,lib,lib64,dev,proc,sys,tmp,mnt,etc,modules}

cp /usr/bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
	[ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
for prog in /usr/sbin/nbd-client /usr/sbin/mke2fs /usr/sbin/e2fsck /usr/bin/fio; do
	rm -f "$root/bin/$(basename "$prog")" # busybox may have an applet of that name
	cp "$prog" "$root/bin/$(basename "$prog")"
	ldd "$prog" | awk '/=>/ {print $3} /ld-linux/ {print $1}' | while read -r lib; do
		[ -f "$lib" ] || continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
done
ln -sf mke2fs "$root/bin/mkfs.ext4"
ln -sf e2fsck "$root/bin/fsck.ext4"
mkdir -p "$root/etc"
: > "$root/etc/mtab"

for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net nbd; do
	f=$(find "/lib/modules/$kver/kernel" -name "$m.ko*" | head -1)
	case "$f" in
	*.xz) xz -dc "$f" > "$root/modules/$m.ko" ;;
	*.zst) zstd -qdc "$f" > "$root/modules/$m.ko" ;;
	*) cp "$f" "$root/modules/$m.ko" ;;
	esac
done
cp "$guest" "$root/guest.sh"
cat > "$root/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net nbd; do
	insmod /modules/$m.ko || echo "insmod $m failed"
done
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
