#!/bin/sh
# Builds the busybox image's root filesystem into $ROOTFS from Debian's
# busybox-static, with no network access. Run by the agent (BuildImage) as
#   ROOTFS=<dir> IMAGE_DIR=<this dir> provision.sh
set -eu
: "${ROOTFS:?ROOTFS must name the root filesystem directory}"
IMAGE_DIR=${IMAGE_DIR:-$(dirname "$0")}
BUSYBOX=${BUSYBOX:-/bin/busybox}

if ! "$BUSYBOX" --list >/dev/null 2>&1; then
  echo "provision: $BUSYBOX is missing; install Debian's busybox-static" >&2
  exit 1
fi

cd "$ROOTFS"
mkdir -p bin sbin usr/bin usr/sbin etc dev proc sys tmp run var/log/qabox root srv/app etc/qabox
chmod 1777 tmp
cp "$BUSYBOX" bin/busybox
# Every applet as a link, so hooks and apps find sh, httpd, wget, ...
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] && continue
  ln -sf busybox "bin/$applet"
done
install -m 0755 "$IMAGE_DIR/init" sbin/init

cat > etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > etc/group <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
echo "127.0.0.1 localhost" > etc/hosts
: > etc/resolv.conf
cat > srv/app/index.html <<'HTML'
<!doctype html>
<title>qabox</title>
<h1>qabox environment</h1>
<p>This environment runs the busybox base image with no app deployed.</p>
HTML
