#!/usr/bin/env bash
# Benchmark section "wsh" (called by tests/bench/run.sh; not a test, asserts
# no speed). Env: WARDEN_BIN_DIR (wshd, wsh), WARDEN_ROOTFS (busybox rootfs).
#
#  (a) boot: wshd boot to the first `wsh true` returning (minimal hooks),
#      against the floor `unshare -m -u -i -n -p -f chroot ROOTFS /bin/true`,
#      `bwrap` and `crun run` on the same rootfs (`runc run` when crun
#      cannot run here, e.g. crun refuses hybrid cgroup v1+v2 hosts).
#  (b) exec: `wsh true` into a running wshd, against `nsenter` into the same
#      namespaces and `crun exec` (or `runc exec`) into a running container.
#  (c) RSS of wshd (VmRSS) right after it served (b), and idle 1.5 s later.
# Prints medians (ms) and ratios. Targets: (a) <= 2x floor, (b) <= 0.7x
# nsenter, (c) <= 1024 kB. Everything made here lives under one temp dir
# (private rootfs copy, OCI runtime state) and is removed on exit; the only
# thing outside it is the OCI runtime's own cgroup /warden-bench-<pid>, which
# the runtime removes on delete.
set -euo pipefail
: "${WARDEN_BIN_DIR:?set WARDEN_BIN_DIR}" "${WARDEN_ROOTFS:?set WARDEN_ROOTFS}"
[ "$(id -u)" = 0 ] || { echo "wsh bench: must run as root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "wsh bench: hyperfine missing" >&2; exit 1; }
RUNS_BOOT=${RUNS_BOOT:-40}
RUNS_EXEC=${RUNS_EXEC:-300}
BIN=$WARDEN_BIN_DIR
W=$(mktemp -d /tmp/warden-bench-wsh-XXXXXX)
ID=warden-bench-$$
OCI=
cleanup() {
  for f in "$W"/c/run/wshd.pid "$W"/boot/run/wshd.pid; do
    [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  if [ -n "$OCI" ]; then
    $OCI kill "$ID" KILL 2>/dev/null || true
    $OCI delete -f "$ID" 2>/dev/null || true
    $OCI delete -f "$ID-a" 2>/dev/null || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT

# One private rootfs copy (wshd creates /mnt in it for pivot_root).
cp -a "$WARDEN_ROOTFS" "$W/rootfs"
mkdir -p "$W/rootfs/mnt"

mkhooks() { # DIR: minimal hooks (only the after-clone hook does work: it records the pid)
  mkdir -p "$1/lib" "$1/run"
  for h in hook-parent-before-clone.sh hook-child-before-pivot.sh hook-child-after-pivot.sh; do
    printf '#!/bin/sh\nexit 0\n' > "$1/lib/$h"
  done
  printf '#!/bin/sh\necho "$PID" > "${0%%/*}/../run/wshd.pid"\n' > "$1/lib/hook-parent-after-clone.sh"
  chmod +x "$1"/lib/*.sh
}
mkhooks "$W/boot"
mkhooks "$W/c"

median() { # CSV FILE -> "name median_ms" lines
  awk -F, 'NR > 1 { printf "%s %.3f\n", $1, $4 * 1000 }' "$1"
}

# ---- (a) boot to first command
# Before each timed boot: kill the previous container and wait until its
# init is gone, so its teardown never overlaps a measurement.
cat > "$W/kill-boot.sh" <<KILL
#!/bin/sh
f=$W/boot/run/wshd.pid
[ -f \$f ] || exit 0
p=\$(cat \$f); rm -f \$f
kill -9 \$p 2>/dev/null
i=0
while [ -d /proc/\$p ] && [ \$i -lt 500 ]; do sleep 0.01; i=\$((i + 1)); done
exit 0
KILL
chmod +x "$W/kill-boot.sh"
kill_boot="$W/kill-boot.sh"
boot_cmd="$BIN/wshd --run $W/boot/run --lib $W/boot/lib --root $W/rootfs && $BIN/wsh --socket $W/boot/run/wshd.sock true"
cmds=(-n floor "unshare -m -u -i -n -p -f chroot $W/rootfs /bin/true"
      -n wshd "$boot_cmd")
if command -v bwrap >/dev/null; then
  cmds+=(-n bwrap "bwrap --unshare-all --bind $W/rootfs / /bin/true")
fi
# OCI runtime: crun, or runc when crun cannot run a container on this host.
ocispec() { # ARGS...: write $W/bundle/config.json running ARGS
  ruby -rjson -e 'c = JSON.parse(File.read(ARGV[0])); c["root"]["path"] = ARGV[1]
    c["process"]["terminal"] = false; c["process"]["args"] = ARGV[3..]
    c["linux"]["cgroupsPath"] = ARGV[2]; File.write(ARGV[0], JSON.pretty_generate(c))' \
    "$W/bundle/config.json" "$W/rootfs" "/$ID" "$@"
}
mkdir -p "$W/bundle"
for rt in crun runc; do
  command -v $rt >/dev/null || continue
  rm -f "$W/bundle/config.json"
  (cd "$W/bundle" && $rt spec) >/dev/null 2>&1 || continue
  ocispec /bin/true
  if $rt --root "$W/$rt-state" run --bundle "$W/bundle" "$ID-probe" >/dev/null 2>&1; then
    OCI="$rt --root $W/$rt-state"
    $OCI delete -f "$ID-probe" >/dev/null 2>&1 || true
    break
  fi
  $rt --root "$W/$rt-state" delete -f "$ID-probe" >/dev/null 2>&1 || true
  echo "($rt cannot run containers here: skipped)"
done
RT=${OCI%% *}
if [ -n "$OCI" ]; then
  cmds+=(-n "$RT-run" "$OCI run --bundle $W/bundle $ID-a")
fi
hyperfine --style basic --warmup 3 --runs "$RUNS_BOOT" --prepare "$kill_boot" \
  --export-csv "$W/a.csv" "${cmds[@]}" >"$W/a.log" 2>&1 || { cat "$W/a.log" >&2; exit 1; }
"$kill_boot"

# ---- (b) command into a running container
"$BIN/wshd" --run "$W/c/run" --lib "$W/c/lib" --root "$W/rootfs" --title "wshd: bench" >/dev/null 2>&1
PID=$(cat "$W/c/run/wshd.pid")
cmds=(-n wsh "$BIN/wsh --socket $W/c/run/wshd.sock /bin/true"
      -n nsenter "nsenter -t $PID -m -u -i -n -p -r -w /bin/true")
if [ -n "$OCI" ]; then
  ocispec /bin/sleep 1000
  $OCI run -d --bundle "$W/bundle" "$ID" >/dev/null </dev/null
  cmds+=(-n "$RT-exec" "$OCI exec $ID /bin/true")
fi
hyperfine -N --style basic --warmup 20 --runs "$RUNS_EXEC" \
  --export-csv "$W/b.csv" "${cmds[@]}" >"$W/b.log" 2>&1 || { cat "$W/b.log" >&2; exit 1; }

# ---- (c) RSS of wshd right after serving (b), and idle (wshd drops its
# resident program text after 1 s without activity)
RSS_BUSY=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status")
sleep 1.5
RSS=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status")

echo "(a) boot to first command, median ms:"
median "$W/a.csv" | awk '{ printf "    %-10s %8.3f\n", $1, $2 }'
floor=$(median "$W/a.csv" | awk '$1 == "floor" { print $2 }')
median "$W/a.csv" | awk -v f="$floor" '$1 != "floor" { printf "    %-10s %6.2fx floor\n", $1, $2 / f }'
echo "    target: wshd <= 2x floor"
echo "(b) run /bin/true in a running container, median ms:"
median "$W/b.csv" | awk '{ printf "    %-10s %8.3f\n", $1, $2 }'
ns=$(median "$W/b.csv" | awk '$1 == "nsenter" { print $2 }')
median "$W/b.csv" | awk -v f="$ns" '$1 != "nsenter" { printf "    %-10s %6.2fx nsenter\n", $1, $2 / f }'
echo "    target: wsh <= 0.7x nsenter"
echo "(c) wshd RSS: idle ${RSS} kB, right after serving (b) ${RSS_BUSY} kB (target: idle <= 1024 kB)"
for b in wshd wsh; do
  printf '    %s: %s\n' "$b" "$(file -L "$BIN/$b" | sed 's/.*: //' | cut -d, -f1-4)"
  [ ! -u "$BIN/$b" ] || echo "    $b HAS A SETUID BIT"
done
