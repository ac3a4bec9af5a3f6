#!/bin/sh
# hook-parent-after-clone.sh: run by wshd on the host once the container's
# init exists, with its host pid in $PID (before the init continues).
#   - creates the container's cgroups (warden-<prefix>/<id>) and moves $PID
#     into them; each dir is recorded in run/cgroups as
#     "<subsystem|unified> <path>" as soon as it exists (one mkdir makes
#     them all; each is recorded before it is set up and $PID moved in)
#   - v1: the devices cgroup gets warden's allowlist (everything when
#     allow_nested_warden=true). v2 has no devices controller: once this
#     hook returns, wshd itself attaches the same allowlist as a BPF device
#     program to the cgroup $PID is in (helpers/wshd/src/devices.rs; none
#     when allow_nested_warden=true)
#   - v2: cpu, memory and pids are enabled in warden-<prefix> if setup.sh
#     did not (only the missing ones; fails naming them if the parent does
#     not offer them)
#   - writes run/wshd.pid
#   - runs net.sh setup with PID (in the background while the cgroups are
#     set up): the veth pair is made with its container end in $PID's
#     network namespace (cheaper than moving it there)
set -eu

script=hook-parent-after-clone.sh
cd "${0%/*}/.."
. ./lib/common.sh
load_config

pid=${PID:-}
is_uint "$pid" && [ -d "/proc/$pid" ] || die "PID is not a running process: ${PID:-unset}"

devices_allow() {
  echo "$2" >"$1/devices.allow" || die "allowing device '$2' in $1 failed"
}

setup_devices() { # dir
  if [ "$allow_nested_warden" = true ]; then
    devices_allow "$1" "a *:* rwm"
    return 0
  fi
  echo a >"$1/devices.deny" || die "denying all devices in $1 failed"
  devices_allow "$1" "c 1:3 rwm"   # null
  devices_allow "$1" "c 1:5 rwm"   # zero
  devices_allow "$1" "c 1:7 rwm"   # full
  devices_allow "$1" "c 1:8 rwm"   # random
  devices_allow "$1" "c 1:9 rwm"   # urandom
  devices_allow "$1" "c 5:0 rwm"   # tty
  devices_allow "$1" "c 5:2 rwm"   # ptmx
  devices_allow "$1" "c 136:* rwm" # pts/*
}

# The network (net.sh setup with PID: the veth pair with its container end
# made right in $PID's network namespace, host end, nft chain) runs in the
# background meanwhile: the first move of $PID into a cgroup waits for an
# RCU grace period (10-40 ms here), and net.sh takes about as long.
PID=$pid ./net.sh setup &
net_pid=$!

: >run/cgroups
cgroup_plan "$id"
plan=$cg_plan

# One mkdir for every hierarchy (on v2, the parent's controllers first).
set --
while read -r subsystem dir; do
  [ -n "$dir" ] || continue
  if [ "$subsystem" = unified ]; then
    parent=${dir%/*}
    [ -d "$parent" ] || mkdir -p "$parent" || die "creating cgroup $parent failed"
    ctl=
    read -r ctl <"$parent/cgroup.subtree_control" || true
    missing=
    for c in cpu memory pids; do
      case " $ctl " in
        *" $c "*) ;;
        *) missing="$missing +$c" ;;
      esac
    done
    if [ -n "$missing" ]; then
      echo "${missing# }" >"$parent/cgroup.subtree_control" 2>/dev/null || {
        offered=
        read -r offered <"$parent/cgroup.controllers" || true
        die "enabling${missing} in $parent/cgroup.subtree_control failed (the parent offers: ${offered:-nothing})"
      }
    fi
  fi
  set -- "$@" "$dir"
done <<EOF
$plan
EOF
[ $# -eq 0 ] || mkdir -p "$@" || die "creating cgroups $* failed"

while read -r subsystem dir; do
  [ -n "$dir" ] || continue
  echo "$subsystem $dir" >>run/cgroups || die "writing run/cgroups failed"
  case "$subsystem" in
    devices) setup_devices "$dir" ;;
  esac
  echo "$pid" >"$dir/cgroup.procs" || die "moving $pid into cgroup $dir failed"
done <<EOF
$plan
EOF

# Written in place: nothing reads it before start.sh returns.
echo "$pid" >run/wshd.pid || die "writing run/wshd.pid failed"

wait "$net_pid" || die "net.sh setup failed"
