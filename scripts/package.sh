#!/usr/bin/env bash
# Builds the Debian package, qabox_<version>_<arch>.deb, into build/package/
# (or the directory given), then checks it with lintian: an error fails the
# run, warnings are printed. As root it installs what it needs first
# (scripts/install-deps.sh, then debhelper, dpkg-dev, lintian, help2man).
#
# dpkg-buildpackage writes beside the source (../*.deb) and into debian/, so
# it runs on a copy of the tree in build/package-src/: the checkout stays as
# it was. Safe to run again; ccache (QABOX_CCACHE=0 turns it off) makes a
# second build cheap.
#
#   scripts/package.sh [OUTDIR]
#   apt-get install ./build/package/qabox_*.deb
set -euo pipefail
repo_root=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo_root"
out=$(mkdir -p "${1:-build/package}" && cd "${1:-build/package}" && pwd)

say() { printf '==> %s\n' "$*" >&2; }

say "installing Debian packages (if any are missing)"
scripts/install-deps.sh
tools=(debhelper dpkg-dev lintian help2man)
missing=()
for p in "${tools[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "package: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

version=$(dpkg-parsechangelog -l debian/changelog -SVersion)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=qabox_${version}_${arch}.deb

# The copy: what git tracks plus files not yet added (not what it ignores);
# outside a git checkout, every file but the build dirs. The same path each
# run, so ccache's hits survive a fresh copy.
work=$repo_root/build/package-src
src=$work/qabox-$version
say "copying the tree to $src"
rm -rf "$src"
mkdir -p "$src"
if git -C "$repo_root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # ls-files also names deleted files; only those that exist are copied.
  git ls-files -z -co --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -C "$src" -xf -
else
  tar --exclude='./build*' --exclude=./.git -cf - . | tar -C "$src" -xf -
fi
rm -f "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes

launcher_env=()
if [[ ${QABOX_CCACHE:-1} != 0 ]] && command -v ccache >/dev/null; then
  # debhelper points HOME into debian/ during the build: keep the cache
  # where every build finds it.
  launcher_env=(QABOX_CCACHE=1 "CCACHE_DIR=${CCACHE_DIR:-$(ccache -k cache_dir 2>/dev/null || echo "$HOME/.ccache")}"
    "CCACHE_BASEDIR=$src")
fi

say "building $deb (dpkg-buildpackage -b; log: $work/build.log)"
if ! (cd "$src" && env "${launcher_env[@]}" DEB_BUILD_OPTIONS="parallel=${QABOX_PACKAGE_JOBS:-$(nproc)} nocheck" \
  nice dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1); then
  tail -n 40 "$work/build.log" >&2
  echo "package: dpkg-buildpackage failed; the whole log is in $work/build.log" >&2
  exit 1
fi
cp "$work/$deb" "$out/$deb"

say "lintian $out/$deb"
# --fail-on error: warnings are reported, errors fail the run. The report
# goes to stderr; stdout is the package's path alone, for scripts.
lintian --fail-on error --info --display-info "$out/$deb" >&2
echo "$out/$deb"
