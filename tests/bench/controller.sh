#!/usr/bin/env bash
# Benchmark section "controller" (called by tests/bench/run.sh; not a test,
# asserts no speed). Env: WARDEN_BIN_DIR (warden and the helpers),
# WARDEN_ROOTFS (busybox rootfs); optional WARDEN_ROOTFS_DEBIAN (Debian
# rootfs, default build/rootfs-debian of this checkout: `make rootfs-debian`);
# optional WARDEN_SRC (a warden checkout: its Ruby warden-client for (p)).
#
#  (p) create, run(`true`), destroy through warden's own Ruby warden-client
#      (one connection), against the Ruby warden's figures as a documented
#      reference (it cannot run here: see (p) below).
#      Target: each <= 0.1x the Ruby warden's.
#  (a) create, run(`true`), destroy through the protocol with the `warden`
#      ops client, 20 rounds, medians; next to `crun run /bin/true` (or
#      `runc run` where crun cannot run here) on the same rootfs.
#      Target: create+run+destroy <= 5x crun run.
#      The same rounds on the Debian rootfs through a second server,
#      interleaved with the busybox ones (which goes first alternates), and
#      the debian/busybox ratios. Target: create on Debian <= 1.0x busybox.
#      Skipped with a note when the Debian rootfs is missing.
#  (b) run(`true`) in an existing container (`warden run`, client exec
#      included) against `wsh true` into the same container.
#      Target: <= 3x wsh.
#  (c) controller RSS with 100 containers. Target: < 20 MB.
# Everything lives under one temp dir and the servers' own resource prefixes;
# the EXIT trap stops the servers and runs `warden clear` for their configs.
set -euo pipefail
: "${WARDEN_BIN_DIR:?set WARDEN_BIN_DIR}" "${WARDEN_ROOTFS:?set WARDEN_ROOTFS}"
BENCH_SECTION=controller
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
[ "$(id -u)" = 0 ] || { echo "controller bench: must run as root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "controller bench: hyperfine missing" >&2; exit 1; }
ROUNDS=${ROUNDS:-20}
MANY=${MANY:-100}
BIN=$WARDEN_BIN_DIR
here=$(cd "$(dirname "$0")" && pwd)
SCRIPTS=$(cd "$here/../../rootfs-scripts" && pwd)
W=$(mktemp -d /tmp/warden-bench-ctl-XXXXXX)
ID=warden-bench-ctl-$$
PREFIX=b$(printf '%05d' $(($$ % 100000)))
NET=$(( ($$ % 125) * 2 ))
DEB=${WARDEN_ROOTFS_DEBIAN:-$(cd "$here/../.." && pwd)/build/rootfs-debian}
if [ -f "$DEB/etc/debian_version" ]; then DEB=$(cd "$DEB" && pwd -P); else DEB=; fi
OCI=
SRVS=() CONFS=()
cleanup() {
  local p c
  for p in "${SRVS[@]}"; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  for c in "${CONFS[@]}"; do "$BIN/warden" clear --config "$c" >/dev/null 2>&1 || true; done
  if [ -n "$OCI" ]; then
    ocirun $OCI delete -f "$ID" >/dev/null 2>&1 || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

serve() { # NAME ROOTFS PREFIX POOL_NETWORK PORT_START UID_START: start a server on $W/NAME.sock
  mkdir -p "$W/$1-depot"
  cat > "$W/$1.yml" <<YML
server:
  unix_domain_path: $W/$1.sock
  container_depot_path: $W/$1-depot
  container_rootfs_path: $2
  container_grace_time: ~
  resource_prefix: $3
  scripts_path: $SCRIPTS
  bin_path: $BIN
logging:
  level: warn
  file: $W/$1.log
network:
  pool_network: $4
  release_delay: 0
port:
  pool_start_port: $5
  pool_size: 1000
user:
  pool_start_uid: $6
  pool_size: 200
YML
  CONFS+=("$W/$1.yml")
  "$BIN/warden" server --config "$W/$1.yml" >/dev/null 2>&1 &
  SRVS+=($!)
  for _ in $(seq 1 200); do "$BIN/warden" ping --socket "$W/$1.sock" >/dev/null 2>&1 && break; sleep 0.05; done
  "$BIN/warden" ping --socket "$W/$1.sock" >/dev/null || { cat "$W/$1.log" >&2; exit 1; }
}
serve warden "$WARDEN_ROOTFS" "$PREFIX" "10.253.$NET.0/23" 50000 30000
SRV=${SRVS[0]}
if [ -n "$DEB" ]; then
  serve deb "$DEB" "d${PREFIX#b}" "10.251.$NET.0/23" 51000 30200
fi
W_=w
w() { local c=$1; shift; "$BIN/warden" "$c" --socket "$W/warden.sock" "$@"; }
d() { local c=$1; shift; "$BIN/warden" "$c" --socket "$W/deb.sock" "$@"; }

now() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }'; }

# ---- (p) create / run(true) / destroy through warden's own Ruby
# warden-client (warden-client and warden-protocol from WARDEN_SRC, with
# Debian's ruby-beefcake), one connection, ROUNDS rounds. The peer is the
# Ruby warden itself: it cannot run here (its Gemfile needs steno, membrane
# and pidfile, which Debian does not package, and its scripts set up
# iptables chains and cgroup mounts on the host), so its figures are the
# documented reference of issue 12 (same machine, busybox rootfs).
RUBY_NOTE=
if [ -z "${WARDEN_SRC:-}" ]; then
  RUBY_NOTE="WARDEN_SRC unset (the Ruby warden-client comes from a warden checkout)"
elif [ ! -d "$WARDEN_SRC/warden-client/lib" ] || [ ! -d "$WARDEN_SRC/warden-protocol/lib" ]; then
  RUBY_NOTE="no warden-client/lib and warden-protocol/lib in WARDEN_SRC=$WARDEN_SRC"
elif ! ruby -e 'require "beefcake"' 2>/dev/null; then
  RUBY_NOTE="ruby or ruby-beefcake missing"
else
  ruby -I "$WARDEN_SRC/warden-protocol/lib" -I "$WARDEN_SRC/warden-client/lib" - \
    "$W/warden.sock" "$ROUNDS" "$W" <<'RUBY' || RUBY_NOTE="the Ruby warden-client run failed"
require "warden/client"
sock, rounds, dir = ARGV[0], ARGV[1].to_i, ARGV[2]
def now = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
c = Warden::Client.new(sock)
c.connect
out = %w[create run destroy].to_h { |k| [k, File.open("#{dir}/rb.#{k}", "w")] }
(rounds + 2).times do |i|
  t0 = now
  h = c.call(Warden::Protocol::CreateRequest.new).handle
  t1 = now
  r = c.call(Warden::Protocol::RunRequest.new(handle: h, script: "true"))
  raise "run true: exit status #{r.exit_status}" unless r.exit_status == 0
  t2 = now
  c.call(Warden::Protocol::DestroyRequest.new(handle: h))
  t3 = now
  next if i < 2 # warm-up
  out["create"].puts((t1 - t0) / 1e6)
  out["run"].puts((t2 - t1) / 1e6)
  out["destroy"].puts((t3 - t2) / 1e6)
end
out.each_value(&:close)
RUBY
fi

# ---- (a) create / run(true) / destroy, on busybox (client w) and, when
# present, on Debian (client d), interleaved
round() { # CLIENT TAG: one create/run/destroy, times appended to $W/TAG.*
  local t0 t1 t2 t3 h
  t0=$(now); h=$($1 create); t1=$(now)
  $1 run --handle "$h" --script true; t2=$(now)
  $1 destroy --handle "$h"; t3=$(now)
  ms "$t0" "$t1" >> "$W/$2.create"; ms "$t1" "$t2" >> "$W/$2.run"
  ms "$t2" "$t3" >> "$W/$2.destroy"; ms "$t0" "$t3" >> "$W/$2.total"
}
for _ in 1 2; do round w warm; [ -z "$DEB" ] || round d warm; done
for i in $(seq 1 "$ROUNDS"); do
  if [ -z "$DEB" ]; then
    round w bb
  elif [ $((i % 2)) = 1 ]; then
    round w bb; round d deb
  else
    round d deb; round w bb
  fi
done

# OCI runtime on the same rootfs: crun, or runc when crun cannot run here.
# crun refuses this host's hybrid cgroup layout, so it runs in a private
# mount namespace with the v2 hierarchy (/sys/fs/cgroup/unified) unmounted.
ocirun() { # CMD...: in a private mount namespace without the unified hierarchy
  unshare -m --propagation private sh -c \
    'mountpoint -q /sys/fs/cgroup/unified && umount /sys/fs/cgroup/unified; exec "$@"' sh "$@"
}
cp -a "$WARDEN_ROOTFS" "$W/rootfs"
mkdir -p "$W/bundle"
for rt in crun runc; do
  command -v $rt >/dev/null || continue
  rm -f "$W/bundle/config.json"
  (cd "$W/bundle" && $rt spec) >/dev/null 2>&1 || continue
  ruby -rjson -e 'c = JSON.parse(File.read(ARGV[0])); c["root"]["path"] = ARGV[1]
    c["process"]["terminal"] = false; c["process"]["args"] = ["/bin/true"]
    c["linux"]["cgroupsPath"] = ARGV[2]; File.write(ARGV[0], JSON.pretty_generate(c))' \
    "$W/bundle/config.json" "$W/rootfs" "/$ID"
  if ocirun $rt --root "$W/$rt-state" run --bundle "$W/bundle" "$ID" >/dev/null 2>&1; then
    OCI="$rt --root $W/$rt-state"
    ocirun $OCI delete -f "$ID" >/dev/null 2>&1 || true
    break
  fi
  ocirun $rt --root "$W/$rt-state" delete -f "$ID" >/dev/null 2>&1 || true
  echo "($rt cannot run containers here: skipped)"
done
RT=${OCI%% *}
OCI_MS=
if [ -n "$OCI" ]; then
  # hyperfine itself in the namespace, so the timed command is crun alone.
  ocirun hyperfine -N --style basic --warmup 3 --runs "$ROUNDS" --export-json "$W/oci.json" \
    -n "$RT-run" "$OCI run --bundle $W/bundle $ID" >"$W/oci.log" 2>&1 || { cat "$W/oci.log" >&2; exit 1; }
  OCI_MS=$(hf_median "$W/oci.json" "$RT-run")
fi

# ---- (b) run(true) in an existing container vs wsh true
h=$($W_ create)
CP=$($W_ info --handle "$h" | awk '/^container_path:/ { print $2 }')
hf_rounds "$W/b.json" 4 100 10 -N -- \
  -n wsh "$CP/bin/wsh --socket $CP/run/wshd.sock true" \
  -n warden-run "$BIN/warden run --socket $W/warden.sock --handle $h --script true" || exit 1
$W_ destroy --handle "$h"

# ---- (c) RSS with MANY containers
hs=()
for _ in $(seq 1 "$MANY"); do hs+=("$($W_ create)"); done
RSS=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SRV/status")
THREADS=$(ls "/proc/$SRV/task" | wc -l)
for h in "${hs[@]}"; do $W_ destroy --handle "$h"; done

echo "(p) through warden's Ruby warden-client (one connection), median of $ROUNDS, ms:"
if [ -z "$RUBY_NOTE" ]; then
  for k in create run destroy; do row "ruby-client $k" ms <"$W/rb.$k"; done
else
  for k in create run destroy; do absent "ruby-client $k" "$RUBY_NOTE"; done
fi
src="issue 12, Ruby warden measured on this machine with the busybox rootfs"
reference "Ruby warden create" ms 294 "$src"
reference "Ruby warden run(true)" ms 56 "$src"
reference "Ruby warden destroy" ms 337 "$src"
if [ -z "$RUBY_NOTE" ]; then
  ratio "ruby-client create / Ruby warden create" "$(stats <"$W/rb.create" | awk '{ print $1 }')" 294 "<=" 0.1
  ratio "ruby-client run / Ruby warden run" "$(stats <"$W/rb.run" | awk '{ print $1 }')" 56 "<=" 0.1
  ratio "ruby-client destroy / Ruby warden destroy" "$(stats <"$W/rb.destroy" | awk '{ print $1 }')" 337 "<=" 0.1
fi
echo "(a) through the protocol (warden ops client, one process per request), $ROUNDS rounds, ms:"
for k in create run destroy total; do row "ops-client $k (busybox)" ms <"$W/bb.$k"; done
t=$(stats <"$W/bb.total" | awk '{ print $1 }')
if [ -n "$DEB" ]; then
  for k in create run destroy total; do row "ops-client $k (debian)" ms <"$W/deb.$k"; done
  ratio "create on debian / busybox" "$(stats <"$W/deb.create" | awk '{ print $1 }')" \
    "$(stats <"$W/bb.create" | awk '{ print $1 }')" "<=" 1.0
  echo "    (debian rootfs: $DEB)"
else
  absent "ops-client create (debian)" "no Debian rootfs at ${WARDEN_ROOTFS_DEBIAN:-build/rootfs-debian}: make rootfs-debian"
fi
if [ -n "$OCI_MS" ]; then
  hf_times "$W/oci.json" "$RT-run" | row "$RT run /bin/true" ms
  ratio "create+run+destroy / $RT run" "$t" "$OCI_MS" "<=" 5
else
  absent "crun run /bin/true" "no OCI runtime could run here"
fi
echo "(b) /bin/true in an existing container, ms:"
hf_times "$W/b.json" wsh | row "wsh true" ms
hf_times "$W/b.json" warden-run | row "warden run true (client included)" ms
ratio "warden run / wsh" "$(hf_median "$W/b.json" warden-run)" "$(hf_median "$W/b.json" wsh)" "<=" 3
echo "(c) controller with $MANY containers ($THREADS threads):"
echo "$RSS" | row "controller VmRSS, $MANY containers" kB
ratio "controller VmRSS / 20480 kB" "$RSS" 20480 "<=" 1
