#!/bin/sh
# stop.sh [-w SECONDS]: stops every process in the container except wshd.
# Sends SIGTERM, waits up to SECONDS (default 10) for them to exit, then
# sends SIGKILL; -w 0 sends SIGKILL at once. Processes are found in the
# container's cgroup (run/cgroups), never by name. Returns once only wshd is
# left, or fails if something survives SIGKILL for 10 seconds.
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=stop.sh
case "$0" in
  */*) cd "${0%/*}" ;;
esac
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
wshd=
read -r wshd <run/wshd.pid || true
[ -s run/cgroups ] || die "no run/cgroups: cannot find the container's processes"
# Any hierarchy lists the same processes; take the first.
read -r _ cg <run/cgroups
[ -d "$cg" ] || die "cgroup $cg does not exist"

# Sets pids to the processes of the container (its cgroup and any
# sub-cgroups a nested warden made), wshd excepted. Builtins only.
collect() { # dir
  cgroup_read_pids "$1"
  for _p in $cg_pids; do
    [ "$_p" = "$wshd" ] || pids="$pids $_p"
  done
  for _sub in "$1"/*/; do
    [ -d "$_sub" ] || continue
    collect "${_sub%/}"
  done
}
others() {
  pids=
  collect "$cg"
}

# Sets t to monotonic time in centiseconds (from /proc/uptime).
now() {
  read -r _up _ </proc/uptime
  _cs=${_up#*.}
  t=$((${_up%.*} * 100 + ${_cs#0}))
}
now
deadline=$((t + wait_s * 100))
signal=TERM
[ "$wait_s" -gt 0 ] || signal=KILL
termed=" "
kill_deadline=
polls=0

# A job whose process may not exist yet (wshd is still forking it): its
# directory has no exit_status. Then an empty cgroup is checked once more
# after 20 ms before stop.sh returns, so that process is not missed.
jobs_pending() {
  for _j in jobs/*/; do
    [ -d "$_j" ] || continue
    [ -e "${_j}exit_status" ] || return 0
  done
  return 1
}
settled=no

while :; do
  others
  if [ -z "$pids" ]; then
    if [ "$settled" = yes ] || ! jobs_pending; then
      exit 0
    fi
    settled=yes
    sleep 0.02
    continue
  fi
  settled=no
  if [ "$signal" = TERM ]; then
    now
    [ "$t" -lt "$deadline" ] || signal=KILL
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
    now
    [ -n "$kill_deadline" ] || kill_deadline=$((t + 1000))
    # shellcheck disable=SC2086
    kill -s KILL $pids 2>/dev/null || true
    if [ "$t" -ge "$kill_deadline" ]; then
      die "processes survived SIGKILL for 10s:" $pids
    fi
  fi
  # Short polls first (a signalled process is usually gone within a few
  # ms), then 50 ms ones while waiting out a grace period.
  polls=$((polls + 1))
  if [ "$signal" = KILL ] || [ "$polls" -le 10 ]; then
    sleep 0.01
  else
    sleep 0.05
  fi
done
