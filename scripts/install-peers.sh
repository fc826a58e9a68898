#!/usr/bin/env bash
# Installs the real peers the integration tests start on loopback: SLURM with slurmrestd and
# munge (and the bridge node's nginx, nftables, shellcheck and cloud-init, whose configs the
# tests check), PostgreSQL with PostGIS, mosquitto, Prometheus 2.42 with promtool, its
# Pushgateway (and alertmanager), Chromium for the STAC Browser test (driven by playwright-core
# from npm, tests/browser: no browser download), and Slurm 24.11 in a Debian 13 root filesystem beside the host's 22.05
# (scripts/slurm-rootfs.sh; kept in /var/cache/fedeploy between runs). Debian/Ubuntu only;
# needs root or sudo.
# Without them the integration tests skip (or fail where FEDEPLOY_REQUIRE_INTEGRATION=1).
set -euo pipefail

packages=(
  slurmctld slurmd slurmrestd slurm-client munge slurm-wlm-jwt-plugin
  nginx-light nftables curl shellcheck cloud-init
  postgresql postgresql-15-postgis-3
  # The catalog backup drill: psycopg2 (barman[cloud]) builds from source against libpq; the
  # postgres user runs barman-cloud from a venv of the system's Python 3.11.
  libpq-dev gcc python3.11-venv
  mosquitto
  prometheus prometheus-alertmanager prometheus-pushgateway
  jq
  mmdebstrap
  # The browser test's headless Chromium (about 30 s and 360 MB with its libraries, no
  # recommends); node and npm (as for the lint tools) build STAC Browser and run playwright-core.
  chromium
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The bridge suite's second Slurm (24.11): about 35 s from the Debian mirror the first time.
slurm_rootfs() {
  local build=("$(dirname "$0")/slurm-rootfs.sh")
  [ "$(id -u)" -eq 0 ] || build=(sudo "${build[@]}")
  "${build[@]}" || echo "install-peers: no Slurm 24.11 root filesystem; its bridge tests will skip (fail in CI)" >&2
}
if [ ${#missing[@]} -eq 0 ]; then
  slurm_rootfs
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "install-peers: no apt-get here; integration tests will skip (${missing[*]} missing)" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "install-peers: not root and no sudo; integration tests will skip (${missing[*]} missing)" >&2
    exit 0
  fi
fi
echo "install-peers: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The packages' own services are not wanted: the tests start private instances themselves.
echo exit 101 | $sudo tee /usr/sbin/policy-rc.d >/dev/null && $sudo chmod +x /usr/sbin/policy-rc.d
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
$sudo rm -f /usr/sbin/policy-rc.d
slurm_rootfs
