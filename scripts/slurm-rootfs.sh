#!/usr/bin/env bash
# Builds the Debian 13 (trixie) root filesystem whose Slurm 24.11 the bridge's integration tests
# run beside the host's 22.05 (tests/integration/slurm, scripts/slurm_cluster.py --release 24.11).
#
#   scripts/slurm-rootfs.sh [DIR]     # default: $FEDEPLOY_SLURM_ROOTFS or /var/cache/fedeploy/slurm-24.11
#
# Idempotent: a finished tree carries DIR/.fedeploy-rootfs (the Slurm version in it) and is kept;
# a missing or half-built one is built again (mmdebstrap, about a minute from the Debian mirror).
# Needs root, mmdebstrap and the Debian mirror (deb.debian.org or $FEDEPLOY_DEBIAN_MIRROR).
set -euo pipefail

dir="${1:-${FEDEPLOY_SLURM_ROOTFS:-/var/cache/fedeploy/slurm-24.11}}"
mirror="${FEDEPLOY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
stamp="$dir/.fedeploy-rootfs"

if [ -f "$stamp" ]; then
  echo "slurm-rootfs: $dir holds $(cat "$stamp") already"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "slurm-rootfs: needs root to build $dir" >&2
  exit 1
fi
command -v mmdebstrap >/dev/null || {
  echo "slurm-rootfs: mmdebstrap missing (apt-get install -y mmdebstrap)" >&2
  exit 1
}

start=$(date +%s)
parent=$(dirname "$dir")
mkdir -p "$parent"
# One build at a time (two CI jobs on one machine): the second finds the first's tree.
exec 9>"$parent/.slurm-rootfs.lock"
flock 9
if [ -f "$stamp" ]; then
  echo "slurm-rootfs: $dir holds $(cat "$stamp") already"
  exit 0
fi
work="$(mktemp -d "$parent/.slurm-rootfs.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# The packages' own services never start in the tree (mmdebstrap installs a policy-rc.d).
mmdebstrap --quiet --variant=minbase \
  --include=slurm-wlm,slurmrestd,slurm-wlm-jwt-plugin,munge,ca-certificates \
  trixie "$work/root" "$mirror"
version=$(chroot "$work/root" slurmctld -V | awk '{print $2}')
case "$version" in
  24.11.*) ;;
  *)
    echo "slurm-rootfs: trixie's slurmctld is $version, not 24.11.x" >&2
    exit 1
    ;;
esac
echo "slurm $version" >"$work/root/.fedeploy-rootfs"
rm -rf "$dir"
mv "$work/root" "$dir"
echo "slurm-rootfs: built $dir (slurm $version) in $(($(date +%s) - start)) s"
