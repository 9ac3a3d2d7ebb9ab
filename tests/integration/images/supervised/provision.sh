#!/bin/sh
# The busybox image (its own provision.sh, from the recipe beside this one)
# with qabox-init as /sbin/init. Run by the agent as
#   ROOTFS=<dir> IMAGE_DIR=<this dir> [QABOX_INIT=<qabox-init>] provision.sh
# QABOX_INIT is the static qabox-init the image builder passes; without it,
# a qabox-init copied into this recipe's folder. A supervise.json in this
# folder becomes the image's /etc/qabox/supervise.json (the tests write one).
set -eu
: "${ROOTFS:?ROOTFS must name the root filesystem directory}"
IMAGE_DIR=${IMAGE_DIR:-$(dirname "$0")}
QABOX_INIT=${QABOX_INIT:-$IMAGE_DIR/qabox-init}
BUSYBOX_RECIPE=${BUSYBOX_RECIPE:-$IMAGE_DIR/../busybox}

if [ ! -x "$QABOX_INIT" ]; then
  echo "provision: $QABOX_INIT is missing (QABOX_INIT names the static qabox-init)" >&2
  exit 1
fi
IMAGE_DIR="$BUSYBOX_RECIPE" sh "$BUSYBOX_RECIPE/provision.sh"
install -m 0755 "$QABOX_INIT" "$ROOTFS/sbin/init"
mkdir -p "$ROOTFS/srv/www1" "$ROOTFS/srv/www2"
echo "service one" > "$ROOTFS/srv/www1/index.html"
echo "service two" > "$ROOTFS/srv/www2/index.html"
if [ -f "$IMAGE_DIR/supervise.json" ]; then
  install -m 0644 "$IMAGE_DIR/supervise.json" "$ROOTFS/etc/qabox/supervise.json"
fi
