#!/bin/sh
# Builds Debian 12 (bookworm) into $ROOTFS with mmdebstrap, from the apt
# sources this host is configured with: each non-empty file of
# /etc/apt/sources.list and /etc/apt/sources.list.d/ (*.list, *.sources) is
# given to mmdebstrap as a MIRROR, which pastes it into the image's own apt
# sources, so child images install from the same place. Run by the agent
# (BuildImage) as
#   ROOTFS=<empty dir> QABOX_PACKAGES="a b" QABOX_INIT=<qabox-init> provision.sh
set -eu
: "${ROOTFS:?ROOTFS must name the root filesystem directory}"
: "${QABOX_INIT:?QABOX_INIT must name the qabox-init binary}"
SUITE=bookworm

if ! command -v mmdebstrap >/dev/null 2>&1; then
  echo "provision: mmdebstrap is missing; install Debian's mmdebstrap (scripts/install-deps.sh)" >&2
  exit 1
fi
if [ ! -x "$QABOX_INIT" ]; then
  echo "provision: QABOX_INIT=$QABOX_INIT is not an executable file" >&2
  exit 1
fi

set --
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && [ -s "$f" ] && set -- "$@" "$f"
done
if [ "$#" -eq 0 ]; then
  echo "provision: this host has no apt sources (/etc/apt/sources.list or" \
    "/etc/apt/sources.list.d/*.list|*.sources); the Debian image is built from them" >&2
  exit 1
fi

include=$(printf '%s' "${QABOX_PACKAGES:-}" | tr -s ' ' ',' | sed 's/^,//; s/,$//')
# Root mode: no user namespace, so no uidmap. Documentation and man pages
# stay out of the image (and, through dpkg.cfg.d, out of its children's).
mmdebstrap --mode=root --variant=apt --format=directory \
  ${include:+--include="$include"} \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  "$SUITE" "$ROOTFS" "$@"

cd "$ROOTFS"
install -m 0755 "$QABOX_INIT" usr/sbin/init
# What the agent writes into a clone before it starts, and the supervisor's.
mkdir -p etc/qabox var/log/qabox run/qabox srv/app
echo "127.0.0.1 localhost" > etc/hosts
# No DNS inside: environments reach nothing by name.
rm -f etc/resolv.conf
: > etc/resolv.conf
echo "qabox" > etc/hostname
