#!/bin/sh
# hook-parent-after-clone.sh: run by wshd on the host once the container's
# init exists, with its host pid in $PID (before the init continues).
#   - creates the container's cgroups (warden-<prefix>/<id>) and moves $PID
#     into them; devices get warden's allowlist (everything when
#     allow_nested_warden=true); each dir is recorded in run/cgroups as
#     "<subsystem|unified> <path>" as soon as it exists
#   - writes run/wshd.pid
#   - moves the container end of the veth pair into $PID's network namespace
set -eu

script=hook-parent-after-clone.sh
cd "$(dirname "$0")/.."
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

: >run/cgroups
cgroup_dirs "$id" >run/cgroups.plan
while read -r subsystem dir; do
  parent=${dir%/*}
  [ -d "$parent" ] || mkdir -p "$parent" || die "creating cgroup $parent failed"
  if [ "$subsystem" = unified ]; then
    grep -qw memory "$parent/cgroup.subtree_control" ||
      echo "+cpu +memory +pids" >"$parent/cgroup.subtree_control" ||
      die "enabling controllers in $parent failed"
  fi
  mkdir "$dir" 2>/dev/null || [ -d "$dir" ] || die "creating cgroup $dir failed"
  echo "$subsystem $dir" >>run/cgroups || die "writing run/cgroups failed"
  case "$subsystem" in
    devices) setup_devices "$dir" ;;
  esac
  echo "$pid" >"$dir/cgroup.procs" || die "moving $pid into cgroup $dir failed"
done <run/cgroups.plan
rm -f run/cgroups.plan

echo "$pid" >run/wshd.pid.tmp && mv run/wshd.pid.tmp run/wshd.pid || die "writing run/wshd.pid failed"

ip link set "$network_container_iface" netns "$pid" ||
  die "moving $network_container_iface into the network namespace of $pid failed (did net.sh setup run?)"
