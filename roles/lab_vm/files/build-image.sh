#!/usr/bin/env bash
# Builds the lab's Debian base image for qemu, offline from a Debian mirror (role lab_vm):
#   debootstrap (minbase + kernel + systemd + sshd + python3 + the packages the node roles install)
#   -> small initrd (virtio + ext4 only) and an uncompressed kernel (vmlinux) for a fast boot
#   -> ext4 filesystem image written straight from the directory (mke2fs -d, no loop mount).
# Every VM boots a qcow2 overlay of root.raw; its identity (hostname, addresses, SSH key) comes on the
# kernel command line and is applied at every boot by m2m-vm-config (files/m2m-vm-config).
# Env (set by the role): OUT (final directory, created atomically), MIRROR, SECURITY_MIRROR, SUITE,
# PACKAGES (comma-separated), SIZE (filesystem size, e.g. 12G), CONFIG_SCRIPT, CONFIG_UNIT.
set -euo pipefail

: "${OUT:?}" "${MIRROR:?}" "${SECURITY_MIRROR:?}" "${SUITE:?}" "${PACKAGES:?}" "${SIZE:?}"
: "${CONFIG_SCRIPT:?}" "${CONFIG_UNIT:?}"

mkdir -p "$(dirname "$OUT")"
work=$(mktemp -d "$(dirname "$OUT")/.build.XXXXXX")
rootfs=$work/rootfs
cleanup() {
  for m in proc sys dev/pts dev; do
    mountpoint -q "$rootfs/$m" 2>/dev/null && umount -l "$rootfs/$m"
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
start=$SECONDS

echo "==> debootstrap $SUITE from $MIRROR"
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" \
  >"$work/debootstrap.log" 2>&1; then
  tail -n 40 "$work/debootstrap.log" >&2
  [[ -f $rootfs/debootstrap/debootstrap.log ]] && tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2
  exit 1
fi
echo "    debootstrap: $((SECONDS - start)) s"

in_root() { chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"; }
mount -t proc proc "$rootfs/proc"
mount -t sysfs sys "$rootfs/sys"
mount --bind /dev "$rootfs/dev"

# Apt in the VMs uses the same mirror as this machine (reached through qemu's user network).
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
cat >"$rootfs/etc/apt/apt.conf.d/90m2m-vm" <<'APTCONF'
APT::Install-Recommends "false";
Acquire::Languages "none";
APTCONF
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
# Empty package lists must look old, or apt's cache_valid_time would take them for fresh ones.
touch -d @0 "$rootfs/var/lib/apt/lists"

# A small initrd: only what mounts the root filesystem of a qemu VM (virtio disk, ext4).
cat >"$rootfs/etc/initramfs-tools/conf.d/m2m-vm.conf" <<'CONF'
MODULES=list
COMPRESS=gzip
CONF
printf '%s\n' virtio_pci virtio_blk ext4 crc32c_generic >>"$rootfs/etc/initramfs-tools/modules"
in_root update-initramfs -u -k all >"$work/initramfs.log" 2>&1 || { cat "$work/initramfs.log" >&2; exit 1; }

# Root filesystem, and a swap file made at first boot (node_prep turns swap off for real).
cat >"$rootfs/etc/fstab" <<'FSTAB'
/dev/vda / ext4 rw,relatime,errors=remount-ro 0 1
/swapfile none swap sw 0 0
FSTAB

# The lab's SSH user: admin with passwordless sudo (as inventory/example assumes); no passwords at all.
in_root useradd --create-home --shell /bin/bash --groups sudo admin
echo 'admin ALL=(ALL) NOPASSWD:ALL' >"$rootfs/etc/sudoers.d/m2m-vm-admin"
chmod 0440 "$rootfs/etc/sudoers.d/m2m-vm-admin"
cat >"$rootfs/etc/ssh/sshd_config.d/m2m-vm.conf" <<'SSHD'
# Lab VM: keys only; one ed25519 host key made at first boot (RSA keys take long under emulation).
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
SSHD
rm -f "$rootfs"/etc/ssh/ssh_host_*

# Identity from the kernel command line, applied at every boot before the network and sshd start.
install -m 0755 "$CONFIG_SCRIPT" "$rootfs/usr/local/sbin/m2m-vm-config"
install -m 0644 "$CONFIG_UNIT" "$rootfs/etc/systemd/system/m2m-vm-config.service"
in_root systemctl enable m2m-vm-config.service systemd-networkd.service >/dev/null 2>&1
# Services the roles enable themselves stay off until a role asks for them; timers that would take
# the dpkg lock while Ansible runs, and gettys nobody can log in to, are masked.
in_root systemctl disable containerd.service nfs-server.service >/dev/null 2>&1 || true
for unit in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer \
  getty@tty1.service serial-getty@ttyS0.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
# Every VM gets its machine-id from the kernel command line (systemd.machine_id=): unique per node.
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
echo m2m-vm >"$rootfs/etc/hostname"
printf 'nameserver 10.0.2.3\n' >"$rootfs/etc/resolv.conf"

for m in proc sys dev; do umount -l "$rootfs/$m"; done

mkdir -p "$work/out"
kernel=$(ls "$rootfs"/boot/vmlinuz-* | sort -V | tail -n1)
version=${kernel##*/vmlinuz-}
cp "$rootfs/boot/initrd.img-$version" "$work/out/initrd.img"
# qemu boots an uncompressed ELF kernel (PVH entry) faster than a bzImage it has to decompress under emulation.
python3 - "$kernel" "$work/out/vmlinux" <<'PY'
import lzma, subprocess, sys, zlib
data = open(sys.argv[1], "rb").read()
magics = [(b"\x1f\x8b\x08", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd")]
for magic, kind in magics:
    pos = data.find(magic)
    while pos != -1:
        blob = data[pos:]
        try:
            if kind == "gzip":
                out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob)
            elif kind == "xz":
                out = lzma.LZMADecompressor().decompress(blob)
            else:
                out = subprocess.run(["zstd", "-dc"], input=blob, capture_output=True).stdout
        except Exception:
            out = b""
        if out[:4] == b"\x7fELF":
            open(sys.argv[2], "wb").write(out)
            sys.exit(0)
        pos = data.find(magic, pos + 1)
sys.exit(f"no ELF kernel found inside {sys.argv[1]}")
PY
echo "$version" >"$work/out/kernel-version"

echo "==> ext4 image ($SIZE) from the directory"
mke2fs -q -t ext4 -L m2m-vm-root -m 0 -d "$rootfs" "$work/out/root.raw" "$SIZE"
rm -rf --one-file-system "$rootfs"
du -sh --apparent-size "$work/out"/* | sed 's/^/    /'
rm -rf "$OUT"
mv "$work/out" "$OUT"
echo "==> base image $OUT built in $((SECONDS - start)) s"
