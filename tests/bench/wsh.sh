#!/usr/bin/env bash
# Benchmark section "wsh" (called by tests/bench/run.sh; not a test, asserts
# no speed). Env: WARDEN_BIN_DIR (wshd, wsh), WARDEN_ROOTFS (busybox rootfs);
# optional WARDEN_SRC: a checkout of cloudfoundry/warden (work tree, bare git
# dir, or its warden/src/wsh directory) to build warden's C wshd/wsh from.
#
#  (a) boot: wshd boot to the first `wsh true` returning:
#      - "wshd": no hooks at all (empty --lib), against the floor
#        `unshare -m -u -i -n -p -f chroot ROOTFS /bin/true`, `bwrap` and
#        `crun run` on the same rootfs (runc only if crun cannot run);
#      - "wshd+4hooks": warden's four hooks present as trivial scripts
#        (`#!/bin/sh` + `exit 0`; the after-clone one records $PID, as
#        warden's does), against "C-wshd+4hooks": warden's C wshd (built from
#        WARDEN_SRC with -O2 into the temp dir) booting the same rootfs with
#        the same hooks, then warden's C `wsh true`. Absent (with a note)
#        when WARDEN_SRC is unset.
#  (b) exec: `wsh true` into a running wshd, against `nsenter` into the same
#      namespaces, warden's C `wsh true` into a running C wshd, and
#      `crun exec` into a running container.
#  (c) resident memory: wshd's VmRSS (and smaps_rollup Rss/Pss) idle, 1.5 s
#      after (b); C wshd's likewise; the `crun run` process that stays as a
#      container's parent.
# (a) and (b) run in ROUNDS hyperfine rounds with the commands' order
# rotated each round (tests/bench/lib.sh hf_rounds), so load changes on this
# shared machine hit every command alike. Prints medians, p90 (ms) and
# ratios. Targets: (a) wshd (no hooks) <= 1.5x floor, wshd+4hooks <= 0.8x
# C-wshd+4hooks; (b) wsh <= 0.7x nsenter and <= 0.9x C wsh; (c) idle
# VmRSS <= 400 kB.
#
# crun refuses hybrid cgroup hosts (this one: v1 controllers plus the v2
# hierarchy at /sys/fs/cgroup/unified); in this script's private mount
# namespace (below) that hierarchy is unmounted, so crun runs in v1 mode.
#
# Finding a container's init: no hook records wshd's pid, so every boot gets
# a --title under this run's prefix (wbench-<pid>-); the init shows
# it as its argv[0], and $W/procs.sh finds the host pid by scanning
# /proc/*/cmdline (untimed, in hyperfine's --prepare), kills it by pid and
# waits until it is gone.
#
# The script re-executes itself (1) under a tiny perl child subreaper, so the
# orphaned container inits are reaped here (this host's pid 1 does not reap
# orphans: a killed init would stay a zombie), and (2) in a private mount
# namespace (`unshare -m`), where warden's C wshd gets what it needs without
# any host mount being touched: its --root bind-mounted onto itself (C wshd
# pivots into it and needs a mount point; warden's before-clone hook mounted
# it) with /mnt and /sbin/wshd in it, and the old root free of stacked mounts
# (where a path is mounted more than once, e.g. /dev/pts here, C wshd
# unmounts it once and then fails with EBUSY on its parent: in this private
# namespace the upper copy of each stacked mount is unmounted first). Rust
# wshd gets a plain directory as --root and bind-mounts it itself, inside the
# timed boot.
# Everything made here lives under one temp dir (private rootfs copies, the C
# build, OCI runtime state) and is removed on exit; the only thing outside it
# is the OCI runtime's own cgroup /warden-bench-<pid>, which the runtime
# removes on delete.
set -euo pipefail
: "${WARDEN_BIN_DIR:?set WARDEN_BIN_DIR}" "${WARDEN_ROOTFS:?set WARDEN_ROOTFS}"
BENCH_SECTION=wsh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
[ "$(id -u)" = 0 ] || { echo "wsh bench: must run as root" >&2; exit 1; }
for c in hyperfine unshare perl; do
  command -v $c >/dev/null || { echo "wsh bench: $c missing" >&2; exit 1; }
done

if [ "${WARDEN_BENCH_WSH_INNER:-}" != 1 ]; then
  export WARDEN_BENCH_WSH_INNER=1
  # prctl(PR_SET_CHILD_SUBREAPER = 36, 1); 157 is prctl on x86_64. Signals
  # get no-op handlers (reset by exec), so the script's own trap cleans up.
  # Once the script exits, orphans still dying are reaped for up to 10 s.
  exec perl -e '
    syscall(157, 36, 1) == 0 or die "wsh bench: prctl(PR_SET_CHILD_SUBREAPER): $!\n";
    $SIG{$_} = sub {} for qw(INT TERM HUP QUIT);
    my $c = fork() // die "wsh bench: fork: $!\n";
    if (!$c) { exec { $ARGV[0] } @ARGV or die "wsh bench: exec $ARGV[0]: $!\n" }
    my $st;
    my $code = sub { ($_[0] & 127) ? 128 + ($_[0] & 127) : $_[0] >> 8 };
    while ((my $p = wait()) != -1) {
      next unless $p == $c;
      $st = $?;
      $SIG{ALRM} = sub { exit $code->($st) };
      alarm 10;
    }
    exit $code->($st);
  ' unshare -m --propagation private bash "$0" "$@"
fi
[ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/$PPID/ns/mnt)" ] ||
  { echo "wsh bench: not in a private mount namespace" >&2; exit 1; }

RUNS_BOOT=${RUNS_BOOT:-60}
RUNS_EXEC=${RUNS_EXEC:-300}
ROUNDS=${ROUNDS:-5}
W=$(mktemp -d /tmp/warden-bench-wsh-XXXXXX)
# Title prefix of every container init started here: short, as warden's C
# wshd asserts its title fits in the argv of `/sbin/wshd --continue` (21).
T=wbench-$$
ID=warden-bench-$$    # OCI container ids
OCI=
CW= # warden's C wshd, when built
cleanup() {
  [ -x "$W/procs.sh" ] && "$W/procs.sh" kill "$T-" || true
  if [ -n "$OCI" ]; then
    $OCI kill "$ID" KILL 2>/dev/null || true
    $OCI delete -f "$ID" 2>/dev/null || true
    $OCI delete -f "$ID-a" 2>/dev/null || true
    $OCI delete -f "$ID-r" 2>/dev/null || true
  fi
  # only mounted in this script's private mount namespace
  ! mountpoint -q "$W/croot" 2>/dev/null || umount "$W/croot" || true
  rm -rf --one-file-system "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# A stable copy of the binaries (another build may replace them meanwhile).
mkdir -p "$W/bin"
cp "$WARDEN_BIN_DIR/wshd" "$WARDEN_BIN_DIR/wsh" "$W/bin/"
BIN=$W/bin

cat >"$W/procs.sh" <<'PROCS'
#!/usr/bin/env bash
# procs.sh find TITLE   print the pid of every process whose argv[0] is TITLE
# procs.sh kill PREFIX  SIGKILL every process whose argv[0] starts with PREFIX,
#                       then wait until each is gone (or a zombie: torn down)
# A container init started with --title TITLE shows TITLE as argv[0]; no
# other process started here does (theirs is a program name or path).
set -u
mode=$1 pat=$2
pids=()
for d in /proc/[0-9]*; do
  a0=
  IFS= read -r -d '' a0 2>/dev/null <"$d/cmdline" || true
  case $mode in
    find) [ "$a0" != "$pat" ] || pids+=("${d#/proc/}") ;;
    kill) case $a0 in "$pat"?*) pids+=("${d#/proc/}") ;; esac ;;
  esac
done
[ ${#pids[@]} -gt 0 ] || exit 0
if [ "$mode" = find ]; then
  printf '%s\n' "${pids[@]}"
  exit 0
fi
kill -9 "${pids[@]}" 2>/dev/null || true
for p in "${pids[@]}"; do
  i=0
  while [ -e "/proc/$p" ] && [ $i -lt 1000 ]; do
    st=
    read -r st 2>/dev/null <"/proc/$p/stat" || true
    st=${st##*) }
    [ "${st%% *}" != Z ] || break
    sleep 0.01
    i=$((i + 1))
  done
done
exit 0
PROCS
chmod +x "$W/procs.sh"

mkhooks() { # DIR: trivial hooks (the after-clone one records $PID, as warden's)
  mkdir -p "$1/lib" "$1/run"
  for h in hook-parent-before-clone.sh hook-child-before-pivot.sh hook-child-after-pivot.sh; do
    printf '#!/bin/sh\nexit 0\n' >"$1/lib/$h"
  done
  printf '#!/bin/sh\necho "$PID" > "${0%%/*}/../run/wshd.pid"\nexit 0\n' >"$1/lib/hook-parent-after-clone.sh"
  chmod +x "$1"/lib/*.sh
}
mkdir -p "$W/n/lib" "$W/n/run" "$W/x/lib" "$W/x/run" # no hooks: (a) and (b)
mkhooks "$W/h"                                        # Rust wshd, four hooks
# One private rootfs copy for everything but C wshd: a plain directory (no
# /mnt needed: wshd uses pivot_root(".", ".")).
cp -a "$WARDEN_ROOTFS" "$W/rootfs"

# ---- warden's C wshd/wsh (optional)
CNOTE=
build_c() {
  local s=$W/wsrc d
  mkdir -p "$s"
  for d in "$WARDEN_SRC" "$WARDEN_SRC/src/wsh" "$WARDEN_SRC/warden/src/wsh"; do
    if [ -f "$d/wshd.c" ]; then
      cp -a "$d/." "$s/"
      break
    fi
  done
  if [ ! -f "$s/wshd.c" ]; then
    git -C "$WARDEN_SRC" archive HEAD warden/src/wsh 2>"$W/wsrc.log" |
      tar -x --strip-components=3 -C "$s" 2>>"$W/wsrc.log" || true
  fi
  if [ ! -f "$s/wshd.c" ]; then
    CNOTE="no warden/src/wsh/wshd.c in WARDEN_SRC=$WARDEN_SRC: $(head -c 300 "$W/wsrc.log")"
    return 1
  fi
  # warden's Makefile builds static binaries; -O2 instead of its -O0 -g.
  rm -f "$s"/*.o "$s/wshd" "$s/wsh"
  if ! make -C "$s" OPTIMIZATION=-O2 DEBUG= wshd wsh >"$W/wsrc.log" 2>&1; then
    CNOTE="building warden's C wshd failed: $(tail -n 5 "$W/wsrc.log")"
    return 1
  fi
  mkdir -p "$W/cbin"
  cp "$s/wshd" "$s/wsh" "$W/cbin/"
  # Its layout: --root a mount point holding /sbin/wshd (exec'd after the
  # pivot) and /mnt (the old root); the after-pivot hook is run through the
  # old root (/mnt/<lib>), so --lib stays on the host.
  cp -a "$WARDEN_ROOTFS" "$W/croot"
  mkdir -p "$W/croot/sbin" "$W/croot/mnt"
  cp "$s/wshd" "$W/croot/sbin/wshd"
  mkhooks "$W/ch"
  mount --bind "$W/croot" "$W/croot"
  CW=$W/cbin
}
# Unstack stacked mounts in this private namespace (see the top comment),
# whether C wshd runs or not, so every variant sees the same mount table.
n=0
while m=$(awk '{ c[$5]++ } END { for (p in c) if (c[p] > 1) { print p; exit } }' /proc/self/mountinfo) &&
  [ -n "$m" ] && [ $n -lt 50 ]; do
  umount "$m" || break
  n=$((n + 1))
done
if [ -n "${WARDEN_SRC:-}" ]; then
  build_c || CW=
else
  CNOTE="WARDEN_SRC unset"
fi

# crun refuses hybrid cgroup hosts (v1 controllers plus the v2 hierarchy at
# /sys/fs/cgroup/unified): hide that hierarchy, in this private mount
# namespace only, so crun runs in legacy v1 mode.
if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
  umount /sys/fs/cgroup/unified 2>/dev/null || umount -l /sys/fs/cgroup/unified || true
fi

# ---- (a) boot to first command
# Before each timed run: kill every container init of this script by pid and
# wait until it is gone, so no teardown overlaps a measurement.
kill_boot="$W/procs.sh kill $T-"
boot() { # NAME DIR ROOT BINDIR: command booting wshd, then `wsh true`
  echo "$4/wshd --run $W/$2/run --lib $W/$2/lib --root $3 --title $T-$1 && $4/wsh --socket $W/$2/run/wshd.sock true"
}
# One untimed boot of each variant first, with its errors shown.
probe() { # NAME CMD (output to a file: the init keeps its stderr open)
  if ! bash -c "$2" >"$W/probe.log" 2>&1 </dev/null; then
    echo "wsh bench: $1 boot failed: $(head -c 2000 "$W/probe.log")" >&2
    $kill_boot
    return 1
  fi
  $kill_boot
}
cmds=(-n floor "unshare -m -u -i -n -p -f chroot $W/rootfs /bin/true")
probe wshd "$(boot n n "$W/rootfs" "$BIN")"
cmds+=(-n wshd "$(boot n n "$W/rootfs" "$BIN")")
probe wshd+4hooks "$(boot h h "$W/rootfs" "$BIN")"
cmds+=(-n wshd+4hooks "$(boot h h "$W/rootfs" "$BIN")")
if [ -n "$CW" ]; then
  if probe C-wshd+4hooks "$(boot c ch "$W/croot" "$CW")"; then
    cmds+=(-n C-wshd+4hooks "$(boot c ch "$W/croot" "$CW")")
  else
    CNOTE="warden's C wshd did not boot here (error above)"
    CW=
  fi
fi
BWRAP_NOTE="bwrap not installed"
if command -v bwrap >/dev/null; then
  cmds+=(-n bwrap "bwrap --unshare-all --bind $W/rootfs / /bin/true")
fi
# OCI runtime: crun (runc stands in only when crun cannot run here).
ocispec() { # ARGS...: write $W/bundle/config.json running ARGS
  ruby -rjson -e 'c = JSON.parse(File.read(ARGV[0])); c["root"]["path"] = ARGV[1]
    c["process"]["terminal"] = false; c["process"]["args"] = ARGV[3..]
    c["linux"]["cgroupsPath"] = ARGV[2]; File.write(ARGV[0], JSON.pretty_generate(c))' \
    "$W/bundle/config.json" "$W/rootfs" "/$ID" "$@"
}
mkdir -p "$W/bundle"
OCI_NOTE="neither crun nor runc could run a container here"
for rt in crun runc; do
  command -v $rt >/dev/null || continue
  command -v ruby >/dev/null || { OCI_NOTE="ruby missing (writes the OCI config)"; break; }
  rm -f "$W/bundle/config.json"
  (cd "$W/bundle" && $rt spec) >/dev/null 2>&1 || continue
  ocispec /bin/true
  if $rt --root "$W/$rt-state" run --bundle "$W/bundle" "$ID-probe" >"$W/oci-probe.log" 2>&1; then
    OCI="$rt --root $W/$rt-state"
    $OCI delete -f "$ID-probe" >/dev/null 2>&1 || true
    break
  fi
  $rt --root "$W/$rt-state" delete -f "$ID-probe" >/dev/null 2>&1 || true
  echo "($rt cannot run containers here: $(head -c 300 "$W/oci-probe.log"))"
done
RT=${OCI%% *}
if [ -n "$OCI" ]; then
  cmds+=(-n "$RT-run" "$OCI run --bundle $W/bundle $ID-a")
fi
hf_rounds "$W/a.json" "$ROUNDS" "$RUNS_BOOT" 3 --prepare "$kill_boot" -- "${cmds[@]}" || exit 1
$kill_boot

# ---- (b) command into a running container (no hooks; C wshd with its
# four trivial hooks, which do not matter once it runs)
"$BIN/wshd" --run "$W/x/run" --lib "$W/x/lib" --root "$W/rootfs" --title "$T-x" >/dev/null 2>&1
PID=$("$W/procs.sh" find "$T-x")
case $PID in
  '' | *[!0-9]*) echo "wsh bench: cannot find the init titled $T-x (found: ${PID:-nothing})" >&2; exit 1 ;;
esac
cmds=(-n wsh "$BIN/wsh --socket $W/x/run/wshd.sock /bin/true"
  -n nsenter "nsenter -t $PID -m -u -i -n -p -r -w /bin/true")
CPID=
if [ -n "$CW" ]; then
  mkhooks "$W/cx"
  "$CW/wshd" --run "$W/cx/run" --lib "$W/cx/lib" --root "$W/croot" --title "$T-cx" >/dev/null 2>&1 </dev/null
  CPID=$("$W/procs.sh" find "$T-cx")
  cmds+=(-n C-wsh "$CW/wsh --socket $W/cx/run/wshd.sock /bin/true")
fi
if [ -n "$OCI" ]; then
  ocispec /bin/sleep 1000
  $OCI run -d --bundle "$W/bundle" "$ID" >/dev/null </dev/null
  cmds+=(-n "$RT-exec" "$OCI exec $ID /bin/true")
fi
hf_rounds "$W/b.json" "$ROUNDS" "$RUNS_EXEC" 20 -N -- "${cmds[@]}" || exit 1

# ---- (c) RSS right after serving (b), and idle (wshd drops its resident
# program text after 1 s without activity): VmRSS, and smaps_rollup's Rss
# and Pss (Pss counts pages shared with other processes by their share).
rss_of() { # PID -> "VmRSS Rss Pss" in kB
  local v r p
  v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null)
  r=$(awk '/^Rss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null)
  p=$(awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null)
  echo "${v:-nan} ${r:-nan} ${p:-nan}"
}
RSS_BUSY=$(rss_of "$PID" | awk '{ print $1 }')
# The OCI runtime's own process per container: `crun run` in the
# foreground stays as the container's parent (the closest to wshd).
OCI_RSS=
if [ -n "$OCI" ]; then
  $OCI run --bundle "$W/bundle" "$ID-r" >/dev/null 2>&1 </dev/null &
  ocipid=$!
  for _ in $(seq 1 200); do
    [ "$($OCI state "$ID-r" 2>/dev/null | ruby -rjson -e 'puts JSON.parse(STDIN.read)["status"]' 2>/dev/null)" = running ] && break
    sleep 0.02
  done
fi
sleep 1.5
read -r RSS RSS_R RSS_P <<<"$(rss_of "$PID")"
[ -z "${BENCH_DEBUG:-}" ] || awk '/^[0-9a-f]+-/ {m=$0} /^Rss:/ && $2>0 {print $2, m}' /proc/$PID/smaps >&2
C_RSS=
[ -z "$CPID" ] || C_RSS=$(rss_of "$CPID" | awk '{ print $1 }')
if [ -n "$OCI" ]; then
  OCI_RSS=$(rss_of "$ocipid" | awk '{ print $1 }')
  $OCI kill "$ID-r" KILL >/dev/null 2>&1 || true
  wait "$ocipid" 2>/dev/null || true
  $OCI delete -f "$ID-r" >/dev/null 2>&1 || true
fi

echo "(a) boot to the first command, $RUNS_BOOT runs, ms:"
for n in floor bwrap "$RT-run" wshd wshd+4hooks C-wshd+4hooks; do
  if hf_times "$W/a.json" "$n" | grep -q .; then
    hf_times "$W/a.json" "$n" | row "boot $n" ms
  fi
done
command -v bwrap >/dev/null || absent "boot bwrap" "$BWRAP_NOTE"
[ -n "$OCI" ] || absent "boot crun-run" "$OCI_NOTE"
[ -n "$CW" ] || absent "boot C-wshd+4hooks" "$CNOTE"
floor=$(hf_median "$W/a.json" floor)
ratio "boot wshd (no hooks) / floor" "$(hf_median "$W/a.json" wshd)" "$floor" "<=" 1.5
[ -z "$CW" ] || ratio "boot wshd+4hooks / C-wshd+4hooks" \
  "$(hf_median "$W/a.json" wshd+4hooks)" "$(hf_median "$W/a.json" C-wshd+4hooks)" "<=" 0.8
[ -z "$OCI" ] || ratio "boot wshd+4hooks / $RT run" \
  "$(hf_median "$W/a.json" wshd+4hooks)" "$(hf_median "$W/a.json" "$RT-run")" "<=" 1
echo "(b) /bin/true in a running container, $RUNS_EXEC runs, ms:"
for n in wsh C-wsh nsenter "$RT-exec"; do
  if hf_times "$W/b.json" "$n" | grep -q .; then
    hf_times "$W/b.json" "$n" | row "exec $n" ms
  fi
done
[ -n "$CW" ] || absent "exec C-wsh" "$CNOTE"
[ -n "$OCI" ] || absent "exec crun-exec" "$OCI_NOTE"
wsh=$(hf_median "$W/b.json" wsh)
ratio "exec wsh / nsenter" "$wsh" "$(hf_median "$W/b.json" nsenter)" "<=" 0.7
[ -z "$CW" ] || ratio "exec wsh / C wsh" "$wsh" "$(hf_median "$W/b.json" C-wsh)" "<=" 0.9
[ -z "$OCI" ] || ratio "exec wsh / $RT exec" "$wsh" "$(hf_median "$W/b.json" "$RT-exec")" "<=" 1
echo "(c) resident memory per container, kB (idle: 1.5 s after the last command):"
echo "$RSS" | row "wshd idle VmRSS" kB
echo "$RSS_R" | row "wshd idle smaps_rollup Rss" kB
echo "$RSS_P" | row "wshd idle smaps_rollup Pss" kB
echo "$RSS_BUSY" | row "wshd VmRSS right after (b)" kB
if [ -n "$C_RSS" ]; then echo "$C_RSS" | row "C wshd idle VmRSS" kB; else absent "C wshd idle VmRSS" "$CNOTE"; fi
if [ -n "$OCI_RSS" ]; then echo "$OCI_RSS" | row "$RT run (foreground) VmRSS" kB; else absent "crun run VmRSS" "$OCI_NOTE"; fi
ratio "wshd idle VmRSS / 400 kB" "$RSS" 400 "<=" 1
for b in wshd wsh; do
  printf '    %s: %s\n' "$b" "$(file -L "$WARDEN_BIN_DIR/$b" | sed 's/.*: //' | cut -d, -f1-4)"
  [ ! -u "$WARDEN_BIN_DIR/$b" ] || echo "    $b HAS A SETUID BIT"
done
