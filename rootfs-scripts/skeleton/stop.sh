#!/bin/sh
# stop.sh [-w SECONDS]: stops every process in the container except wshd.
# Sends SIGTERM, waits up to SECONDS (default 10) for them to exit, then
# sends SIGKILL; -w 0 sends SIGKILL at once. Processes are found in the
# container's cgroup (run/cgroups), never by name. Returns once only wshd is
# left, or fails if something survives SIGKILL for 10 seconds.
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=stop.sh
cd "$(dirname "$0")"
. ./lib/common.sh
load_config

wait_s=10
while getopts "w:" opt; do
  case "$opt" in
    w) wait_s=$OPTARG ;;
    *) die "usage: stop.sh [-w SECONDS]" ;;
  esac
done
is_uint "$wait_s" || die "bad -w (want whole seconds): $wait_s"

[ -f run/wshd.pid ] || die "wshd is not running (no run/wshd.pid)"
wshd=$(cat run/wshd.pid)
[ -s run/cgroups ] || die "no run/cgroups: cannot find the container's processes"
# Any hierarchy lists the same processes; take the first.
read -r _ cg <run/cgroups
[ -d "$cg" ] || die "cgroup $cg does not exist"

# Processes of the container (its cgroup and any sub-cgroups a nested
# warden made), wshd excepted.
others() {
  for p in $(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null); do
    [ "$p" = "$wshd" ] || echo "$p"
  done
}

# Monotonic time in centiseconds (from /proc/uptime).
now() {
  read -r _up _ </proc/uptime
  _cs=${_up#*.}
  echo "$((${_up%.*} * 100 + ${_cs#0}))"
}
deadline=$(($(now) + wait_s * 100))
signal=TERM
[ "$wait_s" -gt 0 ] || signal=KILL
termed=" "
kill_deadline=

while :; do
  pids=$(others)
  [ -n "$pids" ] || exit 0
  if [ "$signal" = TERM ] && [ "$(now)" -ge "$deadline" ]; then
    signal=KILL
  fi
  if [ "$signal" = TERM ]; then
    # TERM once per process; new processes get theirs when first seen.
    for p in $pids; do
      case "$termed" in
        *" $p "*) ;;
        *)
          kill -s TERM "$p" 2>/dev/null || true
          termed="$termed$p "
          ;;
      esac
    done
  else
    [ -n "$kill_deadline" ] || kill_deadline=$(($(now) + 1000))
    # shellcheck disable=SC2086
    kill -s KILL $pids 2>/dev/null || true
    if [ "$(now)" -ge "$kill_deadline" ]; then
      die "processes survived SIGKILL for 10s:" $pids
    fi
  fi
  sleep 0.05
done
