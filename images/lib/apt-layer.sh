# Shared by the provision scripts of images built on debian (from = ...):
# installs $QABOX_PACKAGES with apt-get in a chroot of $ROOTFS, the overlay
# of the parent's layers the agent mounted for the build. Source it, then
# call apt_layer_install (and apt_layer_run for more commands in the
# chroot); apt_layer_end runs on exit whatever happened.
#
# Only during the build: the host's resolv.conf (apt fetches from the
# image's own sources, pasted from the host's by the debian image), /proc
# and a small /dev for maintainer scripts, and a policy-rc.d so that no
# package starts its daemon. Afterwards resolv.conf is empty again, the
# mounts are gone, and apt's cache and lists are removed from the layer.
set -eu
: "${ROOTFS:?ROOTFS must name the root filesystem to install into}"

_apt_layer_mounts=""
_apt_layer_policy=""

apt_layer_end() {
  status=$?
  for m in $_apt_layer_mounts; do
    umount "$ROOTFS/$m" || { echo "apt-layer: could not unmount $ROOTFS/$m" >&2; status=1; }
  done
  _apt_layer_mounts=""
  if [ -n "$_apt_layer_policy" ]; then
    rm -f "$ROOTFS/usr/sbin/policy-rc.d"
    _apt_layer_policy=""
  fi
  if [ -e "$ROOTFS/etc/resolv.conf" ] || [ -L "$ROOTFS/etc/resolv.conf" ]; then
    rm -f "$ROOTFS/etc/resolv.conf"
    : > "$ROOTFS/etc/resolv.conf"
  fi
  exit "$status"
}

apt_layer_begin() {
  trap apt_layer_end EXIT
  trap 'exit 130' INT TERM
  if [ ! -x "$ROOTFS/usr/bin/apt-get" ]; then
    echo "apt-layer: $ROOTFS has no apt-get; build this image from debian" >&2
    exit 1
  fi
  mount -t proc -o nosuid,nodev,noexec proc "$ROOTFS/proc"
  _apt_layer_mounts="proc"
  # A /dev of its own with the usual nodes, not the host's.
  mount -t tmpfs -o nosuid,noexec,mode=0755,size=1m qabox-build-dev "$ROOTFS/dev"
  _apt_layer_mounts="dev $_apt_layer_mounts"
  for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    IFS=: read -r name major minor <<NODE
$n
NODE
    mknod -m 0666 "$ROOTFS/dev/$name" c "$major" "$minor"
  done
  mkdir -p "$ROOTFS/dev/pts" "$ROOTFS/dev/shm"
  ln -s /proc/self/fd "$ROOTFS/dev/fd"
  # initdb sizes its shared memory in /dev/shm.
  mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=64m qabox-build-shm "$ROOTFS/dev/shm"
  _apt_layer_mounts="dev/shm $_apt_layer_mounts"
  if [ ! -e "$ROOTFS/usr/sbin/policy-rc.d" ]; then
    printf '#!/bin/sh\n# qabox image build: no daemon starts at install.\nexit 101\n' \
      > "$ROOTFS/usr/sbin/policy-rc.d"
    chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
    _apt_layer_policy=yes
  fi
  rm -f "$ROOTFS/etc/resolv.conf"
  cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
}

# Runs a command in the chroot, with a plain environment.
apt_layer_run() {
  chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

apt_layer_install() {
  apt_layer_begin
  if [ -n "${QABOX_PACKAGES:-}" ]; then
    apt_layer_run apt-get update -q
    # shellcheck disable=SC2086  # a list of package names
    apt_layer_run apt-get install -q -y --no-install-recommends $QABOX_PACKAGES
  fi
}

# What apt leaves behind: nothing of it belongs in the layer.
apt_layer_clean() {
  apt_layer_run apt-get clean
  # The package indexes; apt's lock and partial/ stay as the parent has them
  # (removing them would only leave whiteouts in the layer).
  find "$ROOTFS/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name lock ! -name partial \
    -exec rm -rf {} +
  rm -rf "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/log/apt/* "$ROOTFS"/var/log/dpkg.log \
    "$ROOTFS"/var/cache/debconf/*-old
}
