#!/usr/bin/env bash
# Bench section "iomux": throughput of a job's output through iomux-spawn +
# iomux-link against the same bytes through a plain pipe (`cat`), and the
# RSS of iomux-spawn with 10 GB of output nobody reads.
#
# Env: WARDEN_BIN_DIR (iomux-spawn, iomux-link). Optional: IOMUX_BENCH_BYTES
# (default 1 GiB), IOMUX_BENCH_RUNS (default 5; the median is printed),
# IOMUX_BENCH_UNREAD (default 10 GB).
# Targets (not asserted): iomux >= 0.8x the plain pipe; RSS < 2 MB.
set -euo pipefail
: "${WARDEN_BIN_DIR:?set WARDEN_BIN_DIR}"
spawn="$WARDEN_BIN_DIR/iomux-spawn"
link="$WARDEN_BIN_DIR/iomux-link"
bytes=${IOMUX_BENCH_BYTES:-1073741824}
runs=${IOMUX_BENCH_RUNS:-5}
unread=${IOMUX_BENCH_UNREAD:-10000000000}
work=$(mktemp -d /tmp/warden-bench-iomux.XXXXXX)
spawner=""
cleanup() {
  [ -n "$spawner" ] && kill -KILL "$spawner" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Plain pipe: producer | cat > /dev/null
plain_ms=()
for _ in $(seq "$runs"); do
  s=$(now_ns)
  head -c "$bytes" /dev/zero | cat > /dev/null
  e=$(now_ns)
  plain_ms+=($(( (e - s) / 1000000 )))
done

# iomux: iomux-spawn DIR producer; iomux-link DIR > /dev/null. Timed from
# the start of iomux-spawn to the end of iomux-link.
iomux_ms=()
for i in $(seq "$runs"); do
  dir="$work/job$i"
  s=$(now_ns)
  "$spawn" --linger 0 "$dir" head -c "$bytes" /dev/zero > "$work/spawn$i.out" &
  spawner=$!
  # The sockets exist once child_pid=N is printed.
  until grep -q '^child_pid=' "$work/spawn$i.out" 2>/dev/null; do sleep 0.001; done
  "$link" "$dir" > /dev/null
  e=$(now_ns)
  wait "$spawner" || true
  spawner=""
  iomux_ms+=($(( (e - s) / 1000000 )))
done

p=$(printf '%s\n' "${plain_ms[@]}" | median)
m=$(printf '%s\n' "${iomux_ms[@]}" | median)
mb=$(( bytes / 1000000 ))
echo "iomux throughput, $mb MB, median of $runs:"
awk -v b="$bytes" -v p="$p" -v m="$m" 'BEGIN {
  printf "  plain pipe (cat):          %6d ms  %7.0f MB/s\n", p, b / p / 1000
  printf "  iomux-spawn + iomux-link:  %6d ms  %7.0f MB/s\n", m, b / m / 1000
  printf "  ratio iomux/plain:         %6.2f (target >= 0.80)\n", p / m
}'
echo "  runs plain: ${plain_ms[*]} ms; iomux: ${iomux_ms[*]} ms"

# RSS with unread output: no linker (--hold 0), the job writes $unread bytes.
dir="$work/unread"
"$spawn" --hold 0 --linger 60 "$dir" head -c "$unread" /dev/zero > /dev/null &
spawner=$!
s=$(now_ns)
until [ -e "$dir/exit_status" ]; do sleep 0.05; done
e=$(now_ns)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$spawner/status")
kill -KILL "$spawner"; wait "$spawner" 2>/dev/null || true
spawner=""
echo "iomux-spawn with $(( unread / 1000000000 )) GB unread output: peak RSS ${hwm} kB (target < 2048 kB), $(( (e - s) / 1000000 )) ms, $(awk -v b="$unread" -v t=$(( (e - s) / 1000000 )) 'BEGIN {printf "%.0f", b / t / 1000}') MB/s drained"
