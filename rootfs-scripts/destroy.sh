#!/bin/sh
# destroy.sh CONTAINER_PATH: removes a container and everything it holds on
# the host. Idempotent, and it always tries every step, so a re-run after a
# partial failure finishes the rest:
#   1. kill every process in the container's cgroups (wshd included; only
#      pids listed in cgroups this container owns are ever signalled)
#   2. net.sh teardown (net_in elements, nft chain and map element, veth),
#      in the background until step 5
#   3. remove the cgroups (retrying while the kernel releases exiting tasks)
#   4. unmount anything still mounted under CONTAINER_PATH: the disk image
#      on tmp/rootfs (create.sh; its loop device is freed with it), else
#      normally nothing (the container's mounts live in its own namespace)
#   5. rm -rf CONTAINER_PATH
# A missing CONTAINER_PATH is success. Each failed step prints one line; the
# exit status is 1 if any step failed.
#
# Speed: net.sh teardown runs in the background while the processes exit,
# the cgroups go and the bulk of the directory is removed; it is waited for
# before the last rm -rf. Pids are read with builtins; all cgroups go in one rmdir.
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=destroy.sh
case "$0" in
  */*) here=${0%/*} ;;
  *) here=. ;;
esac
here=$(cd "$here" && pwd)
. "$here/skeleton/lib/common.sh"

[ $# -eq 1 ] || die "usage: destroy.sh CONTAINER_PATH"
case "$1" in
  /*) ;;
  *) die "CONTAINER_PATH must be absolute: $1" ;;
esac
[ -e "$1" ] || [ -L "$1" ] || exit 0
[ ! -L "$1" ] || die "CONTAINER_PATH is a symlink: $1"
[ -d "$1" ] || die "CONTAINER_PATH is not a directory: $1"
cd -P "$1" || die "cannot enter CONTAINER_PATH: $1"
target=$PWD
[ "$target" != / ] || die "refusing to destroy /"

failed=0
fail() {
  warn "$*"
  failed=1
}

cd "$target"
have_config=no
if [ -f etc/config ]; then
  if (. ./etc/config) >/dev/null 2>&1; then
    . ./etc/config
    have_config=yes
  else
    fail "cannot read $target/etc/config; skipping processes, network and cgroups"
  fi
fi

# Cgroup dirs: those recorded in run/cgroups (only the container's own
# warden-<prefix>/<id> dirs are accepted) plus those the naming rule gives,
# in case the record was not written.
cgroups=
if [ "$have_config" = yes ] && is_prefix "${prefix:-}" && is_id "${id:-}"; then
  if [ -f run/cgroups ]; then
    while read -r _ dir; do
      case "$dir" in
        "$cgroup_fs"/*/warden-"$prefix"/"$id" | "$cgroup_fs"/warden-"$prefix"/"$id") cgroups="$cgroups $dir" ;;
        *) fail "ignoring unexpected cgroup path in run/cgroups: $dir" ;;
      esac
    done <run/cgroups
  fi
  cgroup_plan "$id"
  for dir in $cg_plan; do
    case "$dir" in
      /*) ;;
      *) continue ;; # the subsystem column
    esac
    case " $cgroups " in
      *" $dir "*) ;;
      *) cgroups="$cgroups $dir" ;;
    esac
  done
fi

# ---- 1. processes --------------------------------------------------------------
freeze() { # dir state
  if [ -f "$1/freezer.state" ]; then
    echo "$2" >"$1/freezer.state" 2>/dev/null || true
  elif [ -f "$1/cgroup.freeze" ]; then
    _fz=0
    [ "$2" != FROZEN ] || _fz=1
    echo "$_fz" >"$1/cgroup.freeze" 2>/dev/null || true
  fi
}
kill_all() {
  for dir in $cgroups; do
    [ -d "$dir" ] || continue
    if [ -f "$dir/cgroup.kill" ]; then
      echo 1 >"$dir/cgroup.kill" 2>/dev/null || true
    fi
    # Freeze so nothing forks while being killed; SIGKILL is delivered on thaw.
    freeze "$dir" FROZEN
    cgroup_read_pids "$dir"
    # shellcheck disable=SC2086
    [ -z "$cg_pids" ] || kill -9 $cg_pids 2>/dev/null || true
    freeze "$dir" THAWED
  done
}
any_pids() {
  for dir in $cgroups; do
    cgroup_read_pids "$dir"
    [ -z "$cg_pids" ] || return 0
  done
  return 1
}
[ -z "$cgroups" ] || kill_all

# ---- 2. network (in the background from here; waited for before the last
# rm -rf). The processes are dying, so the kernel is about to remove the
# container's network namespace and the veth with it: NETNS_DYING lets
# net.sh wait a moment for that instead of racing it with `ip link del`
# (which costs 20-40 ms of kernel waits). nft works meanwhile.
net_pid=
if [ "$have_config" = yes ] && [ -x ./net.sh ]; then
  NETNS_DYING=1 ./net.sh teardown &
  net_pid=$!
fi

# ---- 1b. wait until the cgroups are empty, killing again what is left ------------
if [ -n "$cgroups" ]; then
  tries=0
  while any_pids; do
    kill_all
    tries=$((tries + 1))
    if [ "$tries" -ge 1000 ]; then
      fail "processes still running in the container's cgroups after SIGKILL for 10s"
      break
    fi
    sleep 0.01
  done
fi

# ---- 3. cgroups --------------------------------------------------------------------
# One rmdir for all (a co-mounted hierarchy is listed twice: its second
# rmdir fails harmlessly); what is left (sub-cgroups, a task still being
# released) goes through cgroup_remove, which retries.
if [ -n "$cgroups" ]; then
  # shellcheck disable=SC2086
  rmdir $cgroups 2>/dev/null || true
  for dir in $cgroups; do
    cgroup_remove "$dir" || fail "removing cgroup $dir failed (busy)"
  done
fi

# ---- 4. mounts -----------------------------------------------------------------------
cd /
# Mount points under the target, deepest (latest mounted) first.
mounts_under() { # newest first
  # awk, not a shell read loop: dash's `read` takes a syscall per byte, and
  # with hundreds of containers (a disk image mount each) mountinfo is tens
  # of KiB.
  awk -v p="$target/" 'index($5 "/", p) == 1 { m[n++] = $5 } END { while (n > 0) print m[--n] }' /proc/self/mountinfo
}
mounts=$(mounts_under)
if [ -n "$mounts" ]; then
  # Listed again only when an unmount was not plain (lazy, or failed): the
  # container's processes are gone, so nothing mounts anew meanwhile.
  recheck=
  for m in $mounts; do
    umount "$m" 2>/dev/null || {
      recheck=1
      umount -l "$m" || fail "unmounting $m failed"
    }
  done
  if [ -n "$recheck" ]; then
    mounts=$(mounts_under)
  else
    mounts=
  fi
fi

# ---- 5. directory ----------------------------------------------------------------------
# The bulk (helper copies, rootfs layers) goes while net.sh may still run;
# the rest (etc/config, net.sh) only after it, so that a failed teardown
# can be re-run.
[ -n "$mounts" ] || rm -rf "$target/bin" "$target/tmp" "$target/mnt" 2>/dev/null || true
if [ -n "$net_pid" ]; then
  wait "$net_pid" || fail "net.sh teardown failed"
fi
if [ -z "$mounts" ]; then
  tries=0
  until rm -rf "$target" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 5 ]; then
      fail "removing $target failed"
      break
    fi
    sleep 0.2
  done
else
  fail "not removing $target: mounts remain under it"
fi
# If the directory stays, it must not look like a running container.
[ ! -d "$target/run" ] || rm -f "$target/run/wshd.pid" "$target/run/wshd.sock"

exit "$failed"
