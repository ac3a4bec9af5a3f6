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
done <etc/bind_mounts
