#!/bin/sh
# create.sh CONTAINER_PATH
#
# Makes a new container directory from skeleton/: validates the settings
# given in the environment (see README.md), writes etc/config and
# etc/bind_mounts, copies the helper binaries into bin/, then runs the
# container's setup.sh in a private mount namespace to prepare its root
# filesystem (overlay upper layer: hostname, hosts, resolv.conf,
# vcap's uid). Nothing is mounted on the host when it returns, except, with
# disk_image_size set, the container's disk image (see below).
#
# disk_image_size (bytes, optional): the container's writable layer lives on
# an ext4 file system of its own, CONTAINER_PATH/disk.img (sparse, no
# journal, no blocks reserved for root), mounted with a loop device on
# CONTAINER_PATH/tmp/rootfs (which holds the overlay's upper and work
# dirs); the server sets its limit (controller/src/limits/disk.rs) and
# destroy.sh unmounts it (the loop device goes with the last unmount).
#
# CONTAINER_PATH must not exist. On any failure everything made is removed
# and one line naming the failed step is printed on stderr.
#
# Speed: every program started costs 1-5 ms on a loaded host, so validation,
# quoting and file writing use shell builtins only; the programs left are
# mkdir, cp (skeleton, helpers), unshare and what setup.sh needs.
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=create.sh
case "$0" in
  */*) here=${0%/*} ;;
  *) here=. ;;
esac
here=$(cd "$here" && pwd)
. "$here/skeleton/lib/common.sh"

[ $# -eq 1 ] || die "usage: create.sh CONTAINER_PATH"
target=$1
is_clean_abs_path "$target" || die "CONTAINER_PATH must be a plain absolute path: $target"
target=${target%/}
depot=${target%/*}
[ -d "${depot:-/}" ] || die "depot directory does not exist: ${depot:-/}"

# ---- settings ---------------------------------------------------------------

need() {
  eval "_need_v=\${$1-}"
  [ -n "$_need_v" ] || die "missing setting: $1"
}

for key in id prefix network_index network_host_ip network_container_ip network_netmask \
  network_host_iface network_container_iface user_uid rootfs_path bin_dir; do
  need "$key"
done
container_iface_mtu=${container_iface_mtu:-1500}
allow_nested_warden=${allow_nested_warden:-false}
root_capabilities=${root_capabilities:-}
dns_servers=${dns_servers:-}
bind_mounts=${bind_mounts:-}
disk_image_size=${disk_image_size:-}

is_id "$id" || die "bad id: $id"
is_prefix "$prefix" || die "bad prefix (want [a-z0-9]{1,6}): $prefix"
is_uint "$network_index" || die "bad network_index: $network_index"
is_ipv4 "$network_host_ip" || die "bad network_host_ip: $network_host_ip"
is_ipv4 "$network_container_ip" || die "bad network_container_ip: $network_container_ip"
network_prefix_len=$(mask_len "$network_netmask") || die "bad network_netmask: $network_netmask"
is_ifname "$network_host_iface" || die "bad network_host_iface: $network_host_iface"
is_ifname "$network_container_iface" || die "bad network_container_iface: $network_container_iface"
case "$network_host_iface" in
  "$prefix"-*) ;;
  *) die "network_host_iface $network_host_iface does not start with the prefix $prefix-" ;;
esac
case "$network_container_iface" in
  "$prefix"-*) ;;
  *) die "network_container_iface $network_container_iface does not start with the prefix $prefix-" ;;
esac
is_uint "$container_iface_mtu" && [ "$container_iface_mtu" -ge 68 ] && [ "$container_iface_mtu" -le 65535 ] ||
  die "bad container_iface_mtu: $container_iface_mtu"
is_uint "$user_uid" && [ "$user_uid" -gt 0 ] || die "bad user_uid: $user_uid"
case "$allow_nested_warden" in
  true | false) ;;
  *) die "bad allow_nested_warden (want true or false): $allow_nested_warden" ;;
esac
if [ -n "$root_capabilities" ]; then
  is_root_caps "$root_capabilities" ||
    die "bad root_capabilities (want none or comma-separated CAP_ names; host-wide ones are never granted): $bad_cap"
fi
if [ -n "$disk_image_size" ]; then
  case "$disk_image_size" in
    '' | *[!0-9]*) die "bad disk_image_size (want bytes): $disk_image_size" ;;
  esac
  [ "${#disk_image_size}" -le 15 ] && [ "$disk_image_size" -ge 1048576 ] ||
    die "bad disk_image_size (want bytes, at least 1048576): $disk_image_size"
fi
for server in $dns_servers; do
  is_ipv4 "$server" || die "bad dns server: $server"
done

is_clean_abs_path "$rootfs_path" || die "rootfs_path must be a plain absolute path: $rootfs_path"
[ -d "$rootfs_path" ] || die "rootfs $rootfs_path not found"
rootfs_path=$(cd -P "$rootfs_path" && pwd -P) || die "rootfs $rootfs_path cannot be resolved"
is_clean_abs_path "$rootfs_path" || die "rootfs_path resolves to an unusable path: $rootfs_path"
[ -d "$rootfs_path/etc" ] || die "rootfs $rootfs_path has no etc/ directory"

[ -d "$bin_dir" ] || die "bin_dir $bin_dir not found"
helpers="wshd wsh iomux-spawn iomux-link oom"
for helper in $helpers; do
  [ -f "$bin_dir/$helper" ] && [ -x "$bin_dir/$helper" ] || die "helper binary missing or not executable: $bin_dir/$helper"
done

# bind_mounts: lines "ro|rw<TAB>src<TAB>dst". Checked here so a bad line
# fails create, not start.
bind_lines=0
bind_clean=
if [ -n "$bind_mounts" ]; then
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    bind_lines=$((bind_lines + 1))
    split_bind_line "$bind_lines" "$line"
    case "$dst" in
      /mnt | /mnt/*) die "bind mount $bind_lines: dst $dst is under /mnt, where wshd puts the old root during pivot_root" ;;
    esac
    [ -e "$src" ] || die "Source path for bind mount does not exist: $src"
    bind_clean="$bind_clean$line
"
  done <<EOF
$bind_mounts
EOF
fi

# ---- make the directory ----------------------------------------------------

# mkdir (not -p) is the atomic "does not exist yet" check; from here on a
# failure removes what was made.
mkdir -m 0700 "$target" 2>/dev/null || die "container path already exists or cannot be made: $target"
created=$target
on_exit() {
  rc=$?
  if [ "$rc" -ne 0 ] && [ -n "$created" ]; then
    # setup.sh ran in its own mount namespace, so nothing but the disk
    # image is mounted here; check anyway before removing.
    [ ! -f "$created/disk.img" ] || umount "$created/tmp/rootfs" 2>/dev/null || true
    if awk -v p="$created/" 'index($5 "/", p) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
      warn "leaving $created in place: something is still mounted under it"
    else
      rm -rf "$created"
    fi
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

cp -R "$here/skeleton/." "$target/" || die "copying skeleton into $target failed"
# tmp/rootfs/upper becomes the container's / (its mode shows there).
mkdir -m 0755 "$target/bin" "$target/etc" "$target/tmp" "$target/tmp/rootfs" "$target/mnt" ||
  die "making the directories in $target failed"
if [ -n "$disk_image_size" ]; then
  # Every image starts as a copy of one empty file system per size, made
  # once in the depot (DEPOT/.disk-template-SIZE.img; clear.sh removes it):
  # a sparse copy (about 2 MiB of metadata) takes 4 ms where mkfs.ext4 takes
  # 9. mkfs.ext4 makes the (sparse) file itself, given its size in KiB, under
  # a temporary name renamed into place, so concurrent creates never copy a
  # half-made template. umask 077 makes both files 0600. Its lost+found
  # stays, outside the container's view (upper/).
  template=$depot/.disk-template-$disk_image_size.img
  if [ ! -f "$template" ]; then
    (umask 077 && exec mkfs.ext4 -q -F -m 0 -O ^has_journal -E lazy_itable_init=1,nodiscard \
      "$template.$$" "$((disk_image_size / 1024))k" >/dev/null) && mv -f "$template.$$" "$template" ||
      { rm -f "$template.$$"; die "formatting the disk image template $template failed (disk quotas need mkfs.ext4; set quota.disk_quota_enabled: false to run without)"; }
  fi
  (umask 077 && exec cp --sparse=always "$template" "$target/disk.img") ||
    die "copying the disk image template $template to $target/disk.img failed"
  mount -n -t ext4 -o loop,nosuid,nodev "$target/disk.img" "$target/tmp/rootfs" ||
    die "mounting the disk image $target/disk.img failed (disk quotas need loop devices; set quota.disk_quota_enabled: false to run without)"
fi
mkdir -m 0755 "$target/tmp/rootfs/upper" "$target/tmp/rootfs/work" ||
  die "making the directories in $target/tmp/rootfs failed"
mkdir -m 0700 "$target/run" "$target/jobs" || die "making $target/run and $target/jobs failed"

# Values are single-quoted so the file can be sourced safely; sets q.
quote() {
  q="'"
  _qr=$1
  while :; do
    case "$_qr" in
      *"'"*)
        q="$q${_qr%%"'"*}'\\''"
        _qr=${_qr#*"'"}
        ;;
      *) break ;;
    esac
  done
  q="$q$_qr'"
}
{
  echo "# written by create.sh; sourced by the container's scripts and hooks"
  for key in id prefix network_index network_host_ip network_container_ip network_netmask \
    network_prefix_len network_host_iface network_container_iface container_iface_mtu user_uid \
    rootfs_path allow_nested_warden root_capabilities dns_servers bin_dir; do
    eval "quote \"\${$key}\""
    echo "$key=$q"
  done
} >"$target/etc/config" || die "writing $target/etc/config failed"
printf '%s' "$bind_clean" >"$target/etc/bind_mounts" || die "writing $target/etc/bind_mounts failed"

# One ln for all helpers: hard links (no data copied now, none freed by
# destroy.sh), so replace a helper in bin_dir by renaming a new file over it
# (install, cargo) rather than by writing into it. When bin_dir is on
# another filesystem (or links are refused) they are copied.
set --
for helper in $helpers; do
  set -- "$@" "$bin_dir/$helper"
done
ln "$@" "$target/bin/" 2>/dev/null || cp -f "$@" "$target/bin/" ||
  die "copying the helpers from $bin_dir into $target/bin failed"

cd "$target"
unshare -m --propagation private ./setup.sh || die "container setup.sh failed for $target"
created=
