#!/usr/bin/env bash
# Builds the systemd Debian 12 image the Molecule scenarios boot, offline from the Debian mirror:
#   debootstrap (minbase + systemd + python3 + ...) -> podman import -> localhost/m2mcloud-systemd:bookworm
# Cached: the image carries a label with the hash of its recipe (this script), and the build is
# skipped while an image with that label exists. FORCE=1 rebuilds anyway.
# Env: DEBIAN_MIRROR (default: the first Debian mirror in this machine's apt sources),
#      IMAGE (default localhost/m2mcloud-systemd:bookworm), CONTAINERS_CONF (set by the caller),
#      EXTRA_PACKAGES (comma-separated, installed by debootstrap too: the lab node image preinstalls
#      what the roles would otherwise apt-install), OVERLAY_DIR (a directory copied over the rootfs
#      last; systemd units in it can be enabled there by symlink). Both are part of the recipe.
# The lab's Kubernetes node image is this image plus packages and an overlay: roles/lab_container.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/m2mcloud-systemd:bookworm}
SUITE=bookworm
INCLUDE=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,openssh-server,iproute2,ca-certificates
EXTRA_PACKAGES=${EXTRA_PACKAGES:-}
OVERLAY_DIR=${OVERLAY_DIR:-}
if [[ -n $EXTRA_PACKAGES ]]; then INCLUDE=$INCLUDE,$EXTRA_PACKAGES; fi
if [[ -n $OVERLAY_DIR && ! -d $OVERLAY_DIR ]]; then
  echo "OVERLAY_DIR=$OVERLAY_DIR is not a directory" >&2
  exit 2
fi
LABEL=org.m2mcloud.recipe

# What the image is made of: this file, the extra packages and the overlay's files (names, modes,
# contents). Edit any of them and the next run rebuilds.
recipe=$({
  sha256sum "$0" | cut -c1-64
  echo "$EXTRA_PACKAGES"
  if [[ -n $OVERLAY_DIR ]]; then
    (cd "$OVERLAY_DIR" && find . \( -type f -o -type l \) -printf '%p %m %l\n' | LC_ALL=C sort \
      && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
  fi
} | sha256sum | cut -c1-16)

if [[ ${FORCE:-0} != 1 ]] && podman image exists "$IMAGE"; then
  have=$(podman image inspect --format "{{ index .Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true)
  if [[ $have == "$recipe" ]]; then
    echo "==> test image $IMAGE is up to date (recipe $recipe): not rebuilt"
    exit 0
  fi
  echo "==> test image $IMAGE has recipe '${have:-none}', want $recipe: rebuilding"
fi

find_mirror() {
  # deb822 (.sources) first, then one-line sources.list; first Debian archive (not security) wins.
  local f uri
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    uri=$(grep -hoE '(URIs:[[:space:]]*|^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]+/debian/?([[:space:]]|$)' "$f" \
      | grep -oE 'https?://[^[:space:]]+' | grep -v security | head -n1 || true)
    if [[ -n $uri ]]; then echo "${uri%/}"; return; fi
  done
  echo "http://deb.debian.org/debian"
}
MIRROR=${DEBIAN_MIRROR:-$(find_mirror)}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-${MIRROR%/debian}/debian-security}

workdir=$(mktemp -d /var/tmp/m2mcloud-rootfs.XXXXXX)
trap 'rm -rf --one-file-system "$workdir"' EXIT
rootfs=$workdir/rootfs

start=$SECONDS
echo "==> debootstrap $SUITE from $MIRROR (minbase + $INCLUDE)"
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$MIRROR" >"$workdir/debootstrap.log" 2>&1 || {
  tail -n 30 "$workdir/debootstrap.log" >&2
  exit 1
}

# Apt inside the test hosts uses the same mirror as this machine.
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES
# No recommends, no docs: what a minimal server install looks like, and faster apt in tests.
cat >"$rootfs/etc/apt/apt.conf.d/90m2mcloud-test" <<'APTCONF'
APT::Install-Recommends "false";
APTCONF
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
# Empty package lists must look old, or apt's cache_valid_time would take them for fresh ones.
touch -d @0 "$rootfs/var/lib/apt/lists"
# A container has no console: getty@tty1 fails and leaves systemd "degraded" (TESTBED.md).
# Units that need real hardware or a kernel of their own are masked the same way.
for unit in getty@tty1.service serial-getty@console.service systemd-udevd.service \
  systemd-udev-trigger.service systemd-remount-fs.service sys-kernel-config.mount \
  sys-kernel-debug.mount; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
# Every container gets its own machine-id at boot (preflight checks they are unique).
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
echo "m2mcloud-test" >"$rootfs/etc/hostname"
if [[ -n $OVERLAY_DIR ]]; then
  # Owned by root whoever checked the files out; modes as in the overlay.
  cp -a --no-preserve=ownership "$OVERLAY_DIR"/. "$rootfs"/
fi

old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
echo "==> podman import -> $IMAGE"
tar -C "$rootfs" --numeric-owner -c . | podman import \
  --change 'CMD ["/sbin/init"]' \
  --change "ENV=container=podman" \
  --change "STOPSIGNAL=SIGRTMIN+3" \
  --change "LABEL=$LABEL=$recipe" \
  - "$IMAGE" >/dev/null 2>"$workdir/import.log" || { cat "$workdir/import.log" >&2; exit 1; }
# The previous build is now untagged: remove it (only it) unless a container still uses it.
if [[ -n $old_id ]]; then podman rmi "$old_id" >/dev/null 2>&1 || true; fi
echo "==> built $IMAGE (recipe $recipe) in $((SECONDS - start)) s"
