#!/usr/bin/env bash
# Benchmark section "scale" (called by tests/bench/run.sh; not a test,
# asserts no speed). Env: WARDEN_BIN_DIR (warden and the helpers),
# WARDEN_ROOTFS (busybox rootfs); optional SCALE_SIZES (default "10 100
# 500"), ROUNDS (default 20), RULES (net_out rules per container, default 2).
#
# Create time as containers accumulate (issue 11): with N containers alive
# (each with RULES net_out rules, one of them logged), the median of ROUNDS
# creates through the protocol (`warden create`; each new container is
# destroyed again before the next round), then the median net_out time
# for those new containers, for each N of SCALE_SIZES.
# Target: create at 500 within 1.2x create at 10.
# Also the server's nft table at each N: its rules (flat: the same for any
# N) and set/map elements, and the elements per container.
# One server with its own prefix and pool; the EXIT trap stops it and runs
# `warden clear`.
set -euo pipefail
: "${WARDEN_BIN_DIR:?set WARDEN_BIN_DIR}" "${WARDEN_ROOTFS:?set WARDEN_ROOTFS}"
[ "$(id -u)" = 0 ] || { echo "scale bench: must run as root" >&2; exit 1; }
SIZES=${SCALE_SIZES:-10 100 500}
ROUNDS=${ROUNDS:-20}
RULES=${RULES:-2}
BIN=$WARDEN_BIN_DIR
here=$(cd "$(dirname "$0")" && pwd)
SCRIPTS=$(cd "$here/../../rootfs-scripts" && pwd)
W=$(mktemp -d /tmp/warden-bench-scale-XXXXXX)
PREFIX=s$(printf '%05d' $(($$ % 100000)))
MAX=0
for n in $SIZES; do [ "$n" -le "$MAX" ] || MAX=$n; done
# A /30 per container: the pool holds MAX + 1 with room to spare.
BITS=2
while [ $((1 << (BITS - 2))) -le $((MAX + 8)) ]; do BITS=$((BITS + 1)); done
POOL=
for k in $(seq 0 15); do
  cand="10.$((240 + ($$ + k) % 8)).0.0/$((32 - BITS))"
  [ -z "$(ip -4 route show to match "${cand%/*}" | grep -v '^default')" ] || continue
  POOL=$cand
  break
done
[ -n "$POOL" ] || { echo "scale bench: no free pool in 10.240.0.0/13" >&2; exit 1; }
SRV=
cleanup() {
  [ -z "$SRV" ] || { kill -9 "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null || true; }
  "$BIN/warden" clear --config "$W/s.yml" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mkdir -p "$W/depot"
cat > "$W/s.yml" <<YML
server:
  unix_domain_path: $W/s.sock
  container_depot_path: $W/depot
  container_rootfs_path: $WARDEN_ROOTFS
  container_grace_time: ~
  resource_prefix: $PREFIX
  scripts_path: $SCRIPTS
  bin_path: $BIN
logging:
  level: warn
  file: $W/s.log
network:
  pool_network: $POOL
  release_delay: 0
port:
  pool_start_port: 52000
  pool_size: 100
user:
  pool_start_uid: 40000
  pool_size: $((MAX + 64))
YML
"$BIN/warden" server --config "$W/s.yml" >/dev/null 2>&1 &
SRV=$!
for _ in $(seq 1 200); do "$BIN/warden" ping --socket "$W/s.sock" >/dev/null 2>&1 && break; sleep 0.05; done
"$BIN/warden" ping --socket "$W/s.sock" >/dev/null || { cat "$W/s.log" >&2; exit 1; }
w() { local c=$1; shift; "$BIN/warden" "$c" --socket "$W/s.sock" "$@"; }

now() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# RULES net_out rules for container $1: a tcp port range to a /24 (the
# first), then all protocols to addresses of a /16, logged.
rules() {
  local i
  for i in $(seq 1 "$RULES"); do
    if [ $((i % 2)) = 1 ]; then
      w net-out --handle "$1" --network "192.0.$((i % 256)).0/24" --port_range 8000:8100
    else
      w net-out --handle "$1" --network "198.18.$((i % 256)).0-198.18.$((i % 256)).99" --protocol all --log
    fi
  done
}

# nft table of the server: "RULES ELEMENTS"
nft_counts() {
  nft -j list table ip "warden-$PREFIX" | ruby -rjson -e '
    r = 0; e = 0
    JSON.parse(STDIN.read)["nftables"].each do |o|
      r += 1 if o["rule"]
      s = o["set"] || o["map"]
      e += (s["elem"] || []).size if s
    end
    puts "#{r} #{e}"' 2>/dev/null ||
    nft -j list table ip "warden-$PREFIX" | python3 -c '
import json, sys
r = e = 0
for o in json.load(sys.stdin)["nftables"]:
    r += "rule" in o
    s = o.get("set") or o.get("map")
    if s:
        e += len(s.get("elem", []))
print(r, e)'
}

alive=()
declare -A C NO R E
for n in $SIZES; do
  while [ "${#alive[@]}" -lt "$n" ]; do
    h=$(w create)
    rules "$h"
    alive+=("$h")
  done
  read -r R[$n] E[$n] < <(nft_counts)
  : > "$W/create.$n"; : > "$W/netout.$n"
  for _ in $(seq 1 "$ROUNDS"); do
    t0=$(now); h=$(w create); t1=$(now)
    rules "$h"; t2=$(now)
    w destroy --handle "$h"
    ms "$t0" "$t1" >> "$W/create.$n"
    ms "$t1" "$t2" >> "$W/netout.$n"
  done
  C[$n]=$(median < "$W/create.$n")
  NO[$n]=$(median < "$W/netout.$n")
  echo "  $n alive: create ${C[$n]} ms, $RULES net_out ${NO[$n]} ms, nft: ${R[$n]} rules, ${E[$n]} elements" >&2
done
for h in "${alive[@]}"; do w destroy --handle "$h"; done
read -r R0 E0 < <(nft_counts)

first=${SIZES%% *}
last=${SIZES##* }
echo "create with N containers alive ($RULES net_out rules each), median of $ROUNDS, ms:"
printf '    %8s %10s %12s %8s %10s\n' alive create "net_out x$RULES" "rules" elements
for n in $SIZES; do
  printf '    %8s %10s %12s %8s %10s\n' "$n" "${C[$n]}" "${NO[$n]}" "${R[$n]}" "${E[$n]}"
done
awk -v a="${C[$first]}" -v b="${C[$last]}" -v f="$first" -v l="$last" \
  'BEGIN { printf "    create at %s = %.2fx create at %s (target <= 1.2x)\n", l, b / a, f }'
awk -v e1="${E[$first]}" -v e2="${E[$last]}" -v f="$first" -v l="$last" -v r="$RULES" \
  'BEGIN { printf "    nft elements per container: %.2f (%s net_out rules + sources); rules per container: 0\n", (e2 - e1) / (l - f), r }'
echo "    nft rules: ${R[$first]} at $first, ${R[$last]} at $last, $R0 with none; elements left after destroying all: $E0"
