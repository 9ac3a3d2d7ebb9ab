#!/usr/bin/env bash
# Runs the integration suites whose containers map ids again, as they run
# on a host with Debian's uidmap installed (lxc recommends it): newuidmap
# and newgidmap first on the PATH of every agent the tests start, so
# liblxc maps each container's ids through them, and they map only what
# /etc/subuid and /etc/subgid give root. The package is unpacked from the
# file install-deps.sh downloads, never installed: that would change how
# every container on the host maps its ids. /etc/subuid and /etc/subgid
# are put back as they were.
#
#   scripts/test-with-uidmap.sh [BUILD_DIR]    (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}

deb=$(compgen -G "/var/cache/qabox-test/uidmap_*.deb" | head -n 1 || true)
if [[ -z $deb ]]; then
  echo "test-with-uidmap: no uidmap package file in /var/cache/qabox-test (scripts/install-deps.sh fetches it)" >&2
  exit 1
fi

work=$(mktemp -d)
saved=$work/saved
mkdir -p "$saved"
for f in /etc/subuid /etc/subgid; do
  if [[ -e $f ]]; then cp -p "$f" "$saved/"; fi
done
restore() {
  for f in /etc/subuid /etc/subgid; do
    if [[ -e $saved/$(basename "$f") ]]; then cp -p "$saved/$(basename "$f")" "$f"; else rm -f "$f"; fi
  done
  rm -rf "$work"
}
trap restore EXIT

dpkg-deb -x "$deb" "$work/root"
# Wrappers that log each call, so this pass knows the ids really went
# through newuidmap; setuid like the package's binaries, as liblxc uses only
# a privileged newuidmap.
mkdir -p "$work/bin"
for tool in newuidmap newgidmap; do
  printf '#!/bin/sh\necho "%s $*" >>%s\nexec %s "$@"\n' \
    "$tool" "$work/calls.log" "$work/root/usr/bin/$tool" >"$work/bin/$tool"
  chmod 4755 "$work/bin/$tool" "$work/root/usr/bin/$tool"
done
chmod 0755 "$work"

# The suites where a mapping is made or used: containers created, cloned,
# started, stopped and destroyed (Lifecycle, Deploy, Pool, Sleep), ids
# isolated per environment and layers idmapped over them (IsolatedIds,
# Layers, LayerMount, and the data pool's snapshots by their ids), services
# and images whose files are chowned in the mapped namespace (Services,
# Images), and user namespaces nested inside one (the LxcHostile cases on
# them). The other suites start containers the same way and test what
# happens after; running them all again would add a quarter of an hour to
# every CI run. LxcUidmap runs its own agents with newuidmap (and edits
# /etc/subuid itself), so it is not in this pass.
suites='^(Lxc(Lifecycle|Deploy|Pool|Sleep|IsolatedIds|Layers|LayerMount|Services|Images)\.|LxcDataPool\.[A-Za-z]*Ids|LxcHostile\.[A-Za-z]*UserNamespaces)'
(cd "$build" && PATH="$work/bin:$PATH" ctest -L integration -R "$suites" --output-on-failure)
calls=$(grep -c '^newuidmap ' "$work/calls.log" 2>/dev/null || true)
if [[ ${calls:-0} -eq 0 ]]; then
  echo "test-with-uidmap: no container mapped its ids through newuidmap" >&2
  exit 1
fi
echo "test-with-uidmap: ${calls} id mappings went through newuidmap"
