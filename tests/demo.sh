#!/usr/bin/env bash
# `make demo`: start a warden server on a scratch depot, create a container
# from the busybox rootfs, run commands in it through the ops client, show
# info, then destroy it and return the host to clean (`warden clear`).
#
# Env (set by the Makefile): WARDEN_BIN_DIR, WARDEN_ROOTFS. Run as root.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${WARDEN_BIN_DIR:-$top/target/x86_64-unknown-linux-gnu/release}
rootfs=${WARDEN_ROOTFS:-$top/build/rootfs}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (containers need it)" >&2; exit 1; }

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
  resource_prefix: demo
  scripts_path: $top/rootfs-scripts
  bin_path: $bin
  pidfile: $work/warden.pid
logging:
  level: info
  file: $work/warden.log
network:
  pool_network: 10.254.250.0/24
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

"$bin/warden" server --config "$cfg" &
server_pid=$!
for _ in $(seq 1 200); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "demo: server did not start; log:" >&2; cat "$work/warden.log" >&2; exit 1; }

w ping
handle=$(w create)
echo "container: $handle"
w run --handle "$handle" --script 'echo "hello from $(hostname)"; id; /sbin/ip -o -4 addr show | grep -v " lo "; ls /'
w info --handle "$handle" | head -20
w destroy --handle "$handle"
w list
echo "demo: OK"
