#!/usr/bin/env bash
# Installs what Go-To needs on a Debian machine (run as root): Node.js >= 22,
# a Docker engine, busybox-static (the test hosts' base image), attr (getfattr:
# a migration's delta reads overlayfs's opaque-directory marks), chromium (the
# dashboard's browser test), the validators the deploy tests run (cloud-init,
# systemd-analyze, vagrant, wg), debootstrap and systemd-nspawn, and the npm
# dependencies (whose `prepare` step builds dist/). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=()
command -v dockerd >/dev/null 2>&1 || pkgs+=(docker.io)
dpkg -s busybox-static >/dev/null 2>&1 || pkgs+=(busybox-static)
command -v getfattr >/dev/null 2>&1 || pkgs+=(attr)
command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
if [ "${#pkgs[@]}" -gt 0 ]; then
  echo "setup: installing ${pkgs[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

# deploy/ tests: `cloud-init schema`, `systemd-analyze verify`, `vagrant validate` (with the libvirt
# provider, to check its block), `wg pubkey`,
# debootstrap for the provisioning test's Debian root, and systemd-nspawn to boot it
tools=()
command -v cloud-init >/dev/null 2>&1 || tools+=(cloud-init)
command -v systemd-analyze >/dev/null 2>&1 || tools+=(systemd)
command -v vagrant >/dev/null 2>&1 || tools+=(vagrant)
dpkg -s vagrant-libvirt >/dev/null 2>&1 || tools+=(vagrant-libvirt)
command -v wg >/dev/null 2>&1 || tools+=(wireguard-tools)
command -v debootstrap >/dev/null 2>&1 || tools+=(debootstrap)
command -v systemd-nspawn >/dev/null 2>&1 || tools+=(systemd-container)
command -v ip >/dev/null 2>&1 || tools+=(iproute2)
if [ "${#tools[@]}" -gt 0 ]; then
  echo "setup: installing ${tools[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${tools[@]}" >/dev/null
fi
if [[ " ${tools[*]} " == *" cloud-init "* ]]; then
  # only its schema check is wanted here: keep it from configuring this machine at the next boot
  touch /etc/cloud/cloud-init.disabled
fi

node_ok() { command -v node >/dev/null 2>&1 && node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)'; }
if ! node_ok; then
  if [ ! -x /opt/node24/node_modules/.bin/node ]; then
    echo "setup: installing Node.js 24 (npm package node@24) into /opt/node24"
    npm install --silent --prefix /opt/node24 node@24
  fi
  export PATH="/opt/node24/node_modules/.bin:$PATH"
fi
echo "setup: node $(node --version), $(dockerd --version)"

npm ci --no-audit --no-fund
