#!/usr/bin/env bash
# `make demo`: start a warden server on a scratch depot, create a container
# from the busybox rootfs, run commands in it through the ops client, show
# info, then destroy it and return the host to clean (`warden clear`).
#
# Env (set by the Makefile): WARDEN_BIN_DIR, WARDEN_ROOTFS. Run as root.
# For tests: WARDEN_DEMO_SCRIPTS (the scripts directory), WARDEN_DEMO_PREFIX
# (resource prefix, default demo), WARDEN_DEMO_NET (a /24, default
# 10.254.250.0/24).
#
# What the host needs is checked first (the tools the scripts run), with
# the package to install. A server that dies while starting is noticed at
# once and its log and stderr are printed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${WARDEN_BIN_DIR:-$top/target/x86_64-unknown-linux-gnu/release}
rootfs=${WARDEN_ROOTFS:-$top/build/rootfs}
scripts=${WARDEN_DEMO_SCRIPTS:-$top/rootfs-scripts}
prefix=${WARDEN_DEMO_PREFIX:-demo}
net=${WARDEN_DEMO_NET:-10.254.250.0/24}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (containers need it): sudo make demo" >&2; exit 1; }
missing=
for t in nft:nftables ip:iproute2; do
  command -v "${t%%:*}" >/dev/null 2>&1 || missing="$missing ${t#*:}"
done
if [ -n "$missing" ]; then
  echo "demo: missing on this host:$missing; run \`sudo make deps\` (apt-get install$missing)" >&2
  exit 1
fi
[ -x "$bin/warden" ] || { echo "demo: $bin/warden not found: run make build" >&2; exit 1; }
[ -d "$rootfs" ] || { echo "demo: no root filesystem at $rootfs: run make rootfs" >&2; exit 1; }

work=$(mktemp -d /tmp/warden-demo.XXXXXX)
sock=$work/warden.sock
cfg=$work/warden.yml
mkdir -p "$work/depot"
cat > "$cfg" <<YAML
server:
  unix_domain_path: $sock
  unix_domain_permissions: 0600
  container_depot_path: $work/depot
  container_rootfs_path: $rootfs
  container_grace_time: 300
  resource_prefix: $prefix
  scripts_path: $scripts
  bin_path: $bin
  pidfile: $work/warden.pid
logging:
  level: info
  file: $work/warden.log
network:
  pool_network: $net
  release_delay: 0
port:
  pool_start_port: 61000
  pool_size: 100
user:
  pool_start_uid: 10000
  pool_size: 64
YAML

server_pid=
finish() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  "$bin/warden" clear --config "$cfg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap finish EXIT

w() { echo "+ warden $*" >&2; local cmd=$1; shift; "$bin/warden" "$cmd" --socket "$sock" "$@"; }

# What the server said, for a failed start.
show_server() {
  echo "--- $work/warden.log:" >&2
  cat "$work/warden.log" >&2 2>/dev/null || true
  echo "--- server stderr:" >&2
  cat "$work/server.err" >&2 2>/dev/null || true
}

"$bin/warden" server --config "$cfg" 2>"$work/server.err" &
server_pid=$!
# Up when the socket answers; dead as soon as the process is gone.
up=
for _ in $(seq 1 400); do
  if "$bin/warden" ping --socket "$sock" >/dev/null 2>&1; then up=1; break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid" && st=0 || st=$?
    server_pid=
    echo "demo: the server exited while starting (status $st):" >&2
    show_server
    exit 1
  fi
  sleep 0.05
done
if [ -z "$up" ]; then
  echo "demo: the server did not answer within 20 s:" >&2
  show_server
  exit 1
fi

w ping
handle=$(w create)
echo "container: $handle"
w run "$handle" 'echo "hello from $(hostname)"; id; /sbin/ip -o -4 addr show | grep -v " lo "; ls /'
w info "$handle" | head -20
w destroy "$handle"
w list
echo "demo: OK"
