#!/bin/sh
# destroy.sh CONTAINER_PATH: removes a container and everything it holds on
# the host. Idempotent, and it always tries every step, so a re-run after a
# partial failure finishes the rest:
#   1. kill every process in the container's cgroups (wshd included; only
#      pids listed in cgroups this container owns are ever signalled)
#   2. net.sh teardown (net_in elements, nft chain and map element, veth)
#   3. remove the cgroups (retrying while the kernel releases exiting tasks)
#   4. unmount anything still mounted under CONTAINER_PATH (normally nothing:
#      the container's mounts live in its own mount namespace)
#   5. rm -rf CONTAINER_PATH
# A missing CONTAINER_PATH is success. Each failed step prints one line; the
# exit status is 1 if any step failed.
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=destroy.sh
here=$(cd "$(dirname "$0")" && pwd)
. "$here/skeleton/lib/common.sh"

[ $# -eq 1 ] || die "usage: destroy.sh CONTAINER_PATH"
case "$1" in
  /*) ;;
  *) die "CONTAINER_PATH must be absolute: $1" ;;
esac
[ -e "$1" ] || [ -L "$1" ] || exit 0
[ ! -L "$1" ] || die "CONTAINER_PATH is a symlink: $1"
[ -d "$1" ] || die "CONTAINER_PATH is not a directory: $1"
target=$(realpath "$1")
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
  for dir in $(cgroup_dirs "$id" | awk '{ print $2 }'); do
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
    pids=$(cgroup_pids "$dir")
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    freeze "$dir" THAWED
  done
}
any_pids() {
  for dir in $cgroups; do
    [ -z "$(cgroup_pids "$dir")" ] || return 0
  done
  return 1
}
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
rm -f run/wshd.pid run/wshd.sock

# ---- 2. network ------------------------------------------------------------------
if [ "$have_config" = yes ] && [ -x ./net.sh ]; then
  ./net.sh teardown || fail "net.sh teardown failed"
fi

# ---- 3. cgroups --------------------------------------------------------------------
for dir in $cgroups; do
  cgroup_remove "$dir" || fail "removing cgroup $dir failed (busy)"
done

# ---- 4. mounts -----------------------------------------------------------------------
cd /
mounts_under() {
  awk -v p="$target/" 'index($5 "/", p) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}
for m in $(mounts_under); do
  umount "$m" 2>/dev/null || umount -l "$m" || fail "unmounting $m failed"
done

# ---- 5. directory ----------------------------------------------------------------------
if [ -z "$(mounts_under)" ]; then
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

exit "$failed"
