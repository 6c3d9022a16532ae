#!/bin/bash
# Makes the agent bundle that deploy/provision.sh installs: the npm package of
# this checkout (bin/, the built dist/, the systemd unit) with its production
# node_modules, as one .tar.gz that needs no registry on the host.
#
#   deploy/bundle.sh [OUT_DIR]     (default: deploy/out; prints the bundle's path)
#
# Dependencies come from the lock file, from npm's cache where it has them.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-deploy/out}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

npm pack --silent --pack-destination "$work" >/dev/null   # runs `prepare`, which builds dist/
tar -xzf "$work"/goto-node-*.tgz -C "$work"
cp package-lock.json "$work/package/"
(cd "$work/package" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --silent)
rm "$work/package/package-lock.json"
version="$(node -p 'require("./package.json").version')"
mkdir -p "$out"
tar -czf "$out/goto-node-$version-bundle.tar.gz" -C "$work" package
echo "$out/goto-node-$version-bundle.tar.gz"
