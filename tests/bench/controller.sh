#!/usr/bin/env bash
# Benchmark section "controller" (called by tests/bench/run.sh; not a test,
# asserts no speed). Env: WARDEN_BIN_DIR (warden and the helpers),
# WARDEN_ROOTFS (busybox rootfs).
#
#  (a) create, run(`true`), destroy through the protocol with the `warden`
#      ops client, 20 rounds, medians; next to `crun run /bin/true` (or
#      `runc run` where crun cannot run here) on the same rootfs.
#      Target: create+run+destroy <= 5x crun run.
#  (b) run(`true`) in an existing container (`warden run`, client exec
#      included) against `wsh true` into the same container.
#      Target: <= 3x wsh.
#  (c) controller RSS with 100 containers. Target: < 20 MB.
# Everything lives under one temp dir and the server's own resource prefix;
# the EXIT trap stops the server and runs `warden clear` for its config.
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
OCI=
SRV=
cleanup() {
  [ -n "$SRV" ] && kill -9 "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null || true
  "$BIN/warden" clear --config "$W/warden.yml" >/dev/null 2>&1 || true
  if [ -n "$OCI" ]; then
    $OCI delete -f "$ID" >/dev/null 2>&1 || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/depot"
cat > "$W/warden.yml" <<YML
server:
  unix_domain_path: $W/warden.sock
  container_depot_path: $W/depot
  container_rootfs_path: $WARDEN_ROOTFS
  container_grace_time: ~
  resource_prefix: $PREFIX
  scripts_path: $SCRIPTS
  bin_path: $BIN
logging:
  level: warn
  file: $W/warden.log
network:
  pool_network: 10.253.$(( ($$ % 125) * 2 )).0/23
  release_delay: 0
port:
  pool_start_port: 50000
  pool_size: 1000
user:
  pool_start_uid: 30000
  pool_size: 200
YML
"$BIN/warden" server --config "$W/warden.yml" >/dev/null 2>&1 &
SRV=$!
W_=w
w() { local c=$1; shift; "$BIN/warden" "$c" --socket "$W/warden.sock" "$@"; }
for _ in $(seq 1 200); do $W_ ping >/dev/null 2>&1 && break; sleep 0.05; done
$W_ ping >/dev/null || { cat "$W/warden.log" >&2; exit 1; }

now() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---- (a) create / run(true) / destroy
for _ in 1 2; do h=$($W_ create); $W_ run --handle "$h" --script true; $W_ destroy --handle "$h"; done
: > "$W/create"; : > "$W/run"; : > "$W/destroy"; : > "$W/total"
for _ in $(seq 1 "$ROUNDS"); do
  t0=$(now); h=$($W_ create); t1=$(now)
  $W_ run --handle "$h" --script true; t2=$(now)
  $W_ destroy --handle "$h"; t3=$(now)
  ms "$t0" "$t1" >> "$W/create"; ms "$t1" "$t2" >> "$W/run"
  ms "$t2" "$t3" >> "$W/destroy"; ms "$t0" "$t3" >> "$W/total"
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

c=$(median < "$W/create"); r=$(median < "$W/run"); d=$(median < "$W/destroy"); t=$(median < "$W/total")
echo "(a) through the protocol (warden ops client), median of $ROUNDS, ms:"
printf '    %-22s %8s\n' create "$c" "run(true)" "$r" destroy "$d" "create+run+destroy" "$t"
if [ -n "$OCI_MS" ]; then
  printf '    %-22s %8s\n' "$RT run /bin/true" "$OCI_MS"
  awk -v t="$t" -v o="$OCI_MS" -v rt="$RT" 'BEGIN { printf "    create+run+destroy = %.2fx %s run (target <= 5x)\n", t / o, rt }'
else
  echo "    (no OCI runtime could run here: no ratio)"
fi
wsh=$(awk -F, '$1 == "wsh" { printf "%.3f", $4 * 1000 }' "$W/b.csv")
wr=$(awk -F, '$1 == "warden-run" { printf "%.3f", $4 * 1000 }' "$W/b.csv")
echo "(b) /bin/true in an existing container, median ms:"
printf '    %-22s %8s\n' "wsh true" "$wsh" "warden run true" "$wr"
awk -v a="$wr" -v b="$wsh" 'BEGIN { printf "    warden run = %.2fx wsh (target <= 3x)\n", a / b }'
echo "(c) controller RSS with $MANY containers: $RSS kB, $THREADS threads (target < 20480 kB)"
