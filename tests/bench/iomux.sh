#!/usr/bin/env bash
# Bench section "iomux" (called by tests/bench/run.sh; asserts no speed).
#
# (a) 1 GiB of job output to one reader writing to /dev/null, wall time:
#     - base:  `head -c N /dev/zero | cat > /dev/null` (the plain pipe a user
#              would compare with);
#     - ours:  `iomux-spawn DIR head -c N /dev/zero` (default flags) and
#              `iomux-link DIR > /dev/null`, from the start of iomux-spawn
#              to the end of iomux-link;
#     - C:     warden's C iomux-spawn/iomux-link the same way, built from
#              WARDEN_SRC (absent without it).
#     The runs are interleaved (base, ours, C, base, ours, ...) so a change
#     in the machine's load hits each alike. Target: ours >= 0.8x base
#     (ratio of median times, base/ours).
# (b) iomux-spawn's peak RSS (VmHWM) while its job writes IOMUX_BENCH_UNREAD
#     bytes (default 4 GB) that nobody reads. Target: < 2 MB.
#
# Env: WARDEN_BIN_DIR (iomux-spawn, iomux-link). Optional: WARDEN_SRC,
# IOMUX_BENCH_BYTES (default 1 GiB), IOMUX_BENCH_RUNS (default 7),
# IOMUX_BENCH_C_RUNS (default 3: C iomux is slow), IOMUX_BENCH_UNREAD.
set -euo pipefail
: "${WARDEN_BIN_DIR:?set WARDEN_BIN_DIR}"
BENCH_SECTION=iomux
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
spawn="$WARDEN_BIN_DIR/iomux-spawn"
link="$WARDEN_BIN_DIR/iomux-link"
bytes=${IOMUX_BENCH_BYTES:-1073741824}
runs=${IOMUX_BENCH_RUNS:-7}
c_runs=${IOMUX_BENCH_C_RUNS:-3}
unread=${IOMUX_BENCH_UNREAD:-4000000000}
work=$(mktemp -d /tmp/warden-bench-iomux.XXXXXX)
spawner=""
cleanup() {
  [ -z "$spawner" ] || kill -KILL "$spawner" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# warden's C iomux, -O2, from WARDEN_SRC (work tree or bare git dir).
CNOTE="WARDEN_SRC unset"
CSPAWN= CLINK=
if [ -n "${WARDEN_SRC:-}" ]; then
  s=$work/csrc
  mkdir -p "$s"
  for d in "$WARDEN_SRC/warden/src/iomux" "$WARDEN_SRC/src/iomux"; do
    [ -f "$d/iomux-spawn.c" ] && { cp -a "$d/." "$s/"; break; }
  done
  [ -f "$s/iomux-spawn.c" ] || git -C "$WARDEN_SRC" archive HEAD warden/src/iomux 2>/dev/null |
    tar -x --strip-components=3 -C "$s" 2>/dev/null || true
  if [ ! -f "$s/iomux-spawn.c" ]; then
    CNOTE="no warden/src/iomux in WARDEN_SRC=$WARDEN_SRC"
  elif make -C "$s" OPTIMIZATION=-O2 DEBUG= iomux-spawn iomux-link >"$work/c.log" 2>&1; then
    CSPAWN=$s/iomux-spawn CLINK=$s/iomux-link
  else
    CNOTE="building warden's C iomux failed: $(tail -n 3 "$work/c.log" | tr '\n' ' ')"
  fi
fi

# One timed run: prints the wall time in ms.
t_base() {
  local s e
  s=$(now_us)
  head -c "$bytes" /dev/zero | cat >/dev/null
  e=$(now_us)
  echo "$(( (e - s) / 1000 ))"
}
t_iomux() { # SPAWN LINK TAG
  local s e dir=$work/job-$3 line fd
  rm -rf "$dir"
  mkdir "$dir" # warden's C iomux-spawn needs it to exist
  s=$(now_us)
  # iomux-spawn's stdout through a pipe: `child_pid=N` says it listens.
  exec {fd}< <(exec "$1" "$dir" head -c "$bytes" /dev/zero 2>/dev/null)
  spawner=$!
  IFS= read -r line <&"$fd" || true
  case $line in child_pid=*) ;; *) echo "iomux bench: $1 printed ${line:-nothing}" >&2; exit 1 ;; esac
  "$2" "$dir" >/dev/null
  e=$(now_us)
  exec {fd}<&-
  wait "$spawner" 2>/dev/null || true
  spawner=""
  echo "$(( (e - s) / 1000 ))"
}

: >"$work/base"; : >"$work/ours"; : >"$work/c"
for i in $(seq 1 "$runs"); do
  t_base >>"$work/base"
  t_iomux "$spawn" "$link" "o$i" >>"$work/ours"
  if [ -n "$CSPAWN" ] && [ "$i" -le "$c_runs" ]; then
    t_iomux "$CSPAWN" "$CLINK" "c$i" >>"$work/c"
  fi
done
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.0f", b / 1048576 }')
echo "(a) $mb MiB of job output to /dev/null, wall time (ms), runs interleaved:"
row "job output, base head | cat" ms <"$work/base"
row "job output, iomux-spawn + link" ms <"$work/ours"
if [ -n "$CSPAWN" ]; then row "job output, C iomux" ms <"$work/c"; else absent "job output, C iomux" "$CNOTE"; fi
b=$(stats <"$work/base" | awk '{ print $1 }')
o=$(stats <"$work/ours" | awk '{ print $1 }')
awk -v n="$bytes" -v b="$b" -v o="$o" 'BEGIN {
  printf "    throughput: base %.0f MB/s, iomux %.0f MB/s\n", n / b / 1000, n / o / 1000 }'
ratio "iomux throughput / base (head | cat)" "$b" "$o" ">=" 0.8
if [ -n "$CSPAWN" ]; then
  ratio_ref "C iomux throughput / base" "$b" "$(stats <"$work/c" | awk '{ print $1 }')"
fi

# (b) RSS with unread output: no linker (--hold 0), the job writes $unread bytes.
dir="$work/unread"
"$spawn" --hold 0 --linger 60 "$dir" head -c "$unread" /dev/zero >/dev/null &
spawner=$!
s=$(now_us)
while [ ! -e "$dir/exit_status" ]; do sleep 0.05; done
e=$(now_us)
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$spawner/status")
kill -KILL "$spawner"
wait "$spawner" 2>/dev/null || true
spawner=""
echo "(b) iomux-spawn with $(( unread / 1000000000 )) GB of unread output ($(( (e - s) / 1000 )) ms):"
echo "$hwm" | row "iomux-spawn peak RSS, unread output" kB
ratio "iomux-spawn peak RSS / 2048 kB" "$hwm" 2048 "<=" 1
