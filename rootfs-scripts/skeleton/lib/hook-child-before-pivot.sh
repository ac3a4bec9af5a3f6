#!/bin/sh
# hook-child-before-pivot.sh: run by the container's init (new mount, pid,
# net, uts and ipc namespaces) before pivot_root, with host paths.
# Applies etc/bind_mounts: lines "ro|rw<TAB>src<TAB>dst". dst is made inside
# mnt/ (a directory, or an empty file when src is a file); no existing part of
# dst may be a symlink, so the mount can never land outside the container
# root. ro mounts are remounted read-only.
set -eu

script=hook-child-before-pivot.sh
cd "${0%/*}/.."
. ./lib/common.sh
load_config

require_own_mount_ns
root=$PWD/mnt
[ -s etc/bind_mounts ] || exit 0

# landed_ok PATH MODE: the topmost mount with mount point PATH exists in
# this namespace and, for MODE ro, is read-only (mountinfo: field 5 is the
# mount point, field 6 the per-mount options; clean paths need no unescaping).
landed_ok() {
  awk -v p="$1" -v m="$2" '$5 == p { opts = $6; seen = 1 }
    END { if (!seen) exit 1; if (m == "ro" && opts !~ /(^|,)ro(,|$)/) exit 1 }' /proc/self/mountinfo
}

n=0
while IFS= read -r line; do
  [ -n "$line" ] || continue
  n=$((n + 1))
  split_bind_line "$n" "$line"
  [ -e "$src" ] || die "Source path for bind mount does not exist: $src"

  # Walk dst one component at a time from the container root: refuse
  # symlinks, create what is missing.
  path=$root
  rest=${dst#/}
  while [ -n "$rest" ]; do
    comp=${rest%%/*}
    case "$rest" in
      */*) rest=${rest#*/} ;;
      *) rest= ;;
    esac
    path=$path/$comp
    [ ! -L "$path" ] || die "bind mount $n: $dst crosses a symlink in the container (${path#"$root"})"
    if [ -z "$rest" ] && [ ! -d "$src" ]; then
      [ -e "$path" ] || : >"$path" || die "bind mount $n: creating file $dst failed"
      [ ! -d "$path" ] || die "bind mount $n: src $src is a file but $dst is a directory"
    else
      [ -e "$path" ] || mkdir "$path" || die "bind mount $n: creating directory ${path#"$root"} failed"
      [ -d "$path" ] || die "bind mount $n: ${path#"$root"} is not a directory"
    fi
  done

  mount -n --bind "$src" "$path" || die "bind mount $n: mounting $src on $dst failed"
  if [ "$mode" = ro ]; then
    mount -n -o remount,bind,ro "$path" || die "bind mount $n: remounting $dst read-only failed"
  fi
  # The walk above and the mount are separate steps: a process of another
  # container sharing a volume could swap a component for a symlink in
  # between (CVE-2021-30465). Once mounted, the destination is a mount point
  # and can no longer be renamed, so checking now is enough: the topmost
  # mount at exactly $path must be there (not where a symlink led) and be
  # read-only when asked. Otherwise the start fails, and this namespace (and
  # whatever landed elsewhere in it) goes with it.
  landed_ok "$path" "$mode" || die "bind mount $n: $dst did not end up where it was walked to (a component was swapped during the mount?)"
done <etc/bind_mounts
