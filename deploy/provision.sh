#!/bin/bash
# Go-To host provisioning: installs Docker, Node.js and the goto-node agent on a
# Debian or Ubuntu host, joins it to a mesh and starts it. One script for every
# kind of host: cloud-init runs it on EC2 and Azure VMs (deploy/), Vagrant on
# its VMs (vagrant/), and the tests in a debootstrapped Debian root.
#
#   provision.sh --agent-bundle PATH|URL [--node-dist PATH|URL] [--swarm-key FILE]
#                [--name NAME] [--listen MA] [--announce MA] [--bootstrap MA]...
#                [--docker-host URL] [--operator USER] [--offline] [--no-systemd]
#
# --agent-bundle  the agent as `npm run deploy:bundle` makes it (a .tar.gz with its
#                 node_modules), a local file or an https URL
# --node-dist     a Node.js linux build: a .tar.xz or .tar.gz file, an https URL, or an
#                 unpacked directory; default: the official build of NODE_VERSION from
#                 nodejs.org, checked against its SHASUMS256.txt
# --swarm-key     the mesh's key; without it this host starts a new mesh
# --operator      a login user who gets a copy of the API token, so that `goto-node peers`
#                 works for them without sudo (whoever holds it can act on this node)
# --offline       no apt and no downloads: every input is a local path (tests, air gaps)
# --no-systemd    start the agent as a background process, not as the systemd unit
#                 (for roots where systemd is not PID 1, such as a chroot)
#
# Safe to run again: what is installed is replaced, an existing identity is kept.
# Exit codes: 0 done, 1 failed, 2 usage error.
set -euo pipefail

NODE_VERSION="${NODE_VERSION:-24.21.0}"
PREFIX=/opt/goto
DATA_DIR=/var/lib/goto
ENV_FILE=/etc/default/goto-node
LOG_DIR=/var/log/goto
UNIT=/etc/systemd/system/goto-node.service

bundle='' node_dist='' swarm_key='' name='' listen='/ip4/0.0.0.0/tcp/4001' announce='' docker_host='unix:///var/run/docker.sock'
operator='' offline=0 use_systemd=1
bootstrap=()

die() { echo "provision: $*" >&2; exit 1; }
usage() { echo "provision: $* (see --help)" >&2; exit 2; }
say() { echo "provision: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --agent-bundle|--node-dist|--swarm-key|--name|--listen|--announce|--bootstrap|--docker-host|--operator)
      [ $# -ge 2 ] || usage "$1 needs a value" ;;
  esac
  case "$1" in
    --agent-bundle) bundle="$2"; shift 2 ;;
    --node-dist) node_dist="$2"; shift 2 ;;
    --swarm-key) swarm_key="$2"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    --listen) listen="$2"; shift 2 ;;
    --announce) announce="$2"; shift 2 ;;
    --bootstrap) bootstrap+=("$2"); shift 2 ;;
    --docker-host) docker_host="$2"; shift 2 ;;
    --operator) operator="$2"; shift 2 ;;
    --offline) offline=1; shift ;;
    --no-systemd) use_systemd=0; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) usage "unknown option $1" ;;
  esac
done

[ "$(id -u)" -eq 0 ] || die "run as root"
[ -n "$bundle" ] || usage "--agent-bundle is required"
[ -z "$swarm_key" ] || [ -r "$swarm_key" ] || die "cannot read the swarm key $swarm_key"
[ -d /run/systemd/system ] || use_systemd=0

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# fetch SOURCE DEST: copy a local file, or download an https URL (never plain http)
fetch() {
  case "$1" in
    https://*) [ "$offline" -eq 0 ] || die "--offline, but $1 is a URL"
               curl -fsSL --proto '=https' --retry 3 -o "$2" "$1" ;;
    http://*) die "refusing plain-http download of $1" ;;
    *) [ -f "$1" ] || die "no such file: $1"; cp "$1" "$2" ;;
  esac
}

install_packages() {
  if [ "$offline" -eq 1 ]; then say "offline: apt skipped"; return; fi
  say "installing docker.io, curl, xz-utils from the distribution"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io curl ca-certificates xz-utils >/dev/null
}

install_node() {
  local dest="$PREFIX/node" src="$node_dist" arch
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) die "no Node.js build for $(uname -m)" ;; esac
  if [ -z "$src" ]; then
    local file="node-v$NODE_VERSION-linux-$arch.tar.xz"
    src="https://nodejs.org/dist/v$NODE_VERSION/$file"
    fetch "https://nodejs.org/dist/v$NODE_VERSION/SHASUMS256.txt" "$work/SHASUMS256.txt"
    fetch "$src" "$work/$file"
    (cd "$work" && grep " $file\$" SHASUMS256.txt | sha256sum -c --quiet -) || die "checksum of $file does not match"
    src="$work/$file"
  elif [ "${src#https://}" != "$src" ]; then
    fetch "$src" "$work/node.tar"
    src="$work/node.tar"
  fi
  rm -rf "$dest.new" && mkdir -p "$dest.new"
  if [ -d "$src" ]; then
    cp -a "$src/." "$dest.new/"
  else
    tar -xf "$src" -C "$dest.new" --strip-components=1
  fi
  "$dest.new/bin/node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)' \
    || die "the Node.js in $node_dist is older than 22"
  rm -rf "$dest" && mv "$dest.new" "$dest"
  say "node $("$dest/bin/node" --version) in $dest"
}

install_agent() {
  local dest="$PREFIX/agent"
  fetch "$bundle" "$work/agent.tar.gz"
  rm -rf "$dest.new" && mkdir -p "$dest.new"
  tar -xzf "$work/agent.tar.gz" -C "$dest.new" --strip-components=1
  [ -f "$dest.new/bin/goto-node.js" ] && [ -d "$dest.new/node_modules" ] || die "$bundle is not an agent bundle (npm run deploy:bundle makes one)"
  rm -rf "$dest" && mv "$dest.new" "$dest"
  cat > /usr/local/bin/goto-node <<EOF
#!/bin/sh
exec $PREFIX/node/bin/node $dest/bin/goto-node.js "\$@"
EOF
  chmod 0755 /usr/local/bin/goto-node
  say "goto-node $(/usr/local/bin/goto-node --version) in $dest"
}

create_user() {
  getent group docker >/dev/null || groupadd --system docker
  if ! id goto >/dev/null 2>&1; then
    useradd --system --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin --user-group goto
  fi
  usermod -a -G docker goto
  install -d -o goto -g goto -m 0700 "$DATA_DIR"
  install -d -o goto -g goto -m 0750 "$LOG_DIR"
}

write_settings() {
  local joined
  joined="$(IFS=,; echo "${bootstrap[*]}")"
  umask 022
  {
    echo "# goto-node settings, written by deploy/provision.sh; read by goto-node.service"
    echo "GOTO_DATA_DIR=$DATA_DIR"
    [ -z "$name" ] || echo "GOTO_NAME=$name"
    echo "GOTO_LISTEN=$listen"
    [ -z "$announce" ] || echo "GOTO_ANNOUNCE=$announce"
    [ -z "$joined" ] || echo "GOTO_BOOTSTRAP=$joined"
    echo "GOTO_DOCKER_HOST=$docker_host"
  } > "$ENV_FILE"
}

init_data_dir() {
  if [ -f "$DATA_DIR/identity.key" ]; then
    say "$DATA_DIR already initialised; identity kept"
    return
  fi
  local args=(init --data-dir "$DATA_DIR")
  if [ -n "$swarm_key" ]; then
    install -o goto -g goto -m 0600 "$swarm_key" "$DATA_DIR/swarm.key"
    args+=(--swarm-key "$DATA_DIR/swarm.key")
  fi
  runuser -u goto -- /usr/local/bin/goto-node "${args[@]}"
}

# a background agent from an earlier run: ask it to leave, and wait until it has
stop_background_agent() {
  local pid i
  [ -f "$DATA_DIR/agent.pid" ] || return 0
  pid="$(cat "$DATA_DIR/agent.pid")"
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  die "the agent started earlier (pid $pid) did not stop within 30 s"
}

start_agent() {
  if [ "$use_systemd" -eq 1 ]; then
    install -m 0644 "$PREFIX/agent/deploy/systemd/goto-node.service" "$UNIT"
    systemctl daemon-reload
    # the distribution's engine, where it is installed (an offline root may be given a socket instead)
    if systemctl cat docker.service >/dev/null 2>&1; then systemctl enable --now docker.service; fi
    systemctl enable goto-node.service
    systemctl restart goto-node.service
  else
    say "systemd is not running here: starting the agent as a background process (log: $LOG_DIR/agent.log)"
    stop_background_agent
    runuser -u goto -- /bin/sh -c "set -a; . $ENV_FILE; set +a; exec setsid /usr/local/bin/goto-node start" \
      >> "$LOG_DIR/agent.log" 2>&1 < /dev/null &
    echo $! > "$DATA_DIR/agent.pid"
  fi
}

wait_healthy() {
  local i
  for i in $(seq 1 60); do
    if "$PREFIX/node/bin/node" -e 'fetch("http://127.0.0.1:7070/healthz").then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))'; then
      say "the agent answers on 127.0.0.1:7070"
      return
    fi
    sleep 1
  done
  [ "$use_systemd" -eq 1 ] && journalctl -u goto-node --no-pager -n 20 >&2 || tail -n 20 "$LOG_DIR/agent.log" >&2 || true
  die "the agent did not answer /healthz within 60 s"
}

give_operator_token() {
  [ -n "$operator" ] || return 0
  local home
  home="$(getent passwd "$operator" | cut -d: -f6)"
  [ -n "$home" ] || die "no such user: $operator"
  install -d -o "$operator" -m 0700 "$home/.local" "$home/.local/share" "$home/.local/share/goto"
  install -o "$operator" -m 0600 "$DATA_DIR/api.token" "$home/.local/share/goto/api.token"
  say "$operator can run goto-node commands (API token in $home/.local/share/goto)"
}

install_packages
install_node
install_agent
create_user
write_settings
init_data_dir
start_agent
wait_healthy
give_operator_token
GOTO_DATA_DIR="$DATA_DIR" /usr/local/bin/goto-node status
