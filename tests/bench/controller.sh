#!/usr/bin/env bash
# Benchmark section "controller" (called by tests/bench/run.sh; not a test,
# asserts no speed). Env: WARDEN_BIN_DIR (warden and the helpers),
# WARDEN_ROOTFS (busybox rootfs); optional WARDEN_ROOTFS_DEBIAN (Debian
# rootfs, default build/rootfs-debian of this checkout: `make rootfs-debian`).
#
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
    $OCI delete -f "$ID" >/dev/null 2>&1 || true
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
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

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
  if $rt --root "$W/$rt-state" run --bundle "$W/bundle" "$ID" >/dev/null 2>&1; then
    OCI="$rt --root $W/$rt-state"
    $OCI delete -f "$ID" >/dev/null 2>&1 || true
    break
  fi
  $rt --root "$W/$rt-state" delete -f "$ID" >/dev/null 2>&1 || true
  echo "($rt cannot run containers here: skipped)"
done
RT=${OCI%% *}
OCI_MS=
if [ -n "$OCI" ]; then
  hyperfine -N --style basic --warmup 3 --runs "$ROUNDS" --export-csv "$W/oci.csv" \
    -n "$RT-run" "$OCI run --bundle $W/bundle $ID" >"$W/oci.log" 2>&1 || { cat "$W/oci.log" >&2; exit 1; }
  OCI_MS=$(awk -F, 'NR == 2 { printf "%.3f", $4 * 1000 }' "$W/oci.csv")
fi

# ---- (b) run(true) in an existing container vs wsh true
h=$($W_ create)
CP=$($W_ info --handle "$h" | awk '/^container_path:/ { print $2 }')
hyperfine -N --style basic --warmup 10 --runs 100 --export-csv "$W/b.csv" \
  -n wsh "$CP/bin/wsh --socket $CP/run/wshd.sock true" \
  -n warden-run "$BIN/warden run --socket $W/warden.sock --handle $h --script true" \
  >"$W/b.log" 2>&1 || { cat "$W/b.log" >&2; exit 1; }
$W_ destroy --handle "$h"

# ---- (c) RSS with MANY containers
hs=()
for _ in $(seq 1 "$MANY"); do hs+=("$($W_ create)"); done
RSS=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SRV/status")
THREADS=$(ls "/proc/$SRV/task" | wc -l)
for h in "${hs[@]}"; do $W_ destroy --handle "$h"; done

c=$(median < "$W/bb.create"); r=$(median < "$W/bb.run"); dd=$(median < "$W/bb.destroy"); t=$(median < "$W/bb.total")
echo "(a) through the protocol (warden ops client), median of $ROUNDS, ms:"
if [ -n "$DEB" ]; then
  dc=$(median < "$W/deb.create"); dr=$(median < "$W/deb.run"); ddd=$(median < "$W/deb.destroy"); dt=$(median < "$W/deb.total")
  printf '    %-22s %8s %8s %8s\n' "" busybox debian deb/bb
  for k in "create $c $dc" "run(true) $r $dr" "destroy $dd $ddd" "create+run+destroy $t $dt"; do
    set -- $k
    awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "    %-22s %8.3f %8.3f %7.2fx\n", n, a, b, b / a }'
  done
else
  printf '    %-22s %8s\n' create "$c" "run(true)" "$r" destroy "$dd" "create+run+destroy" "$t"
fi
if [ -n "$OCI_MS" ]; then
  printf '    %-22s %8s\n' "$RT run /bin/true" "$OCI_MS"
  awk -v t="$t" -v o="$OCI_MS" -v rt="$RT" 'BEGIN { printf "    create+run+destroy = %.2fx %s run (target <= 5x)\n", t / o, rt }'
else
  echo "    (no OCI runtime could run here: no ratio)"
fi
if [ -n "$DEB" ]; then
  awk -v a="$c" -v b="$dc" 'BEGIN { printf "    create on debian = %.2fx busybox (target <= 1.0x)\n", b / a }'
  awk -v a="$t" -v b="$dt" 'BEGIN { printf "    create+run+destroy on debian = %.2fx busybox\n", b / a }'
  echo "    (debian rootfs: $DEB)"
else
  echo "    (no Debian rootfs at ${WARDEN_ROOTFS_DEBIAN:-build/rootfs-debian}: debian/busybox comparison skipped; make rootfs-debian)"
fi
wsh=$(awk -F, '$1 == "wsh" { printf "%.3f", $4 * 1000 }' "$W/b.csv")
wr=$(awk -F, '$1 == "warden-run" { printf "%.3f", $4 * 1000 }' "$W/b.csv")
echo "(b) /bin/true in an existing container, median ms:"
printf '    %-22s %8s\n' "wsh true" "$wsh" "warden run true" "$wr"
awk -v a="$wr" -v b="$wsh" 'BEGIN { printf "    warden run = %.2fx wsh (target <= 3x)\n", a / b }'
echo "(c) controller RSS with $MANY containers: $RSS kB, $THREADS threads (target < 20480 kB)"
