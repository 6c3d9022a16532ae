#!/usr/bin/env bash
# Installs what Go-To needs on a Debian machine (run as root): Node.js >= 22,
# a Docker engine, busybox-static (the test hosts' base image), attr
# (getfattr: a migration's delta reads overlayfs's opaque-directory marks),
# chromium (the dashboard's browser test) and the npm dependencies (whose
# `prepare` step builds dist/). Safe to run again.
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
