#!/bin/sh
# setup.sh: prepares the container's root filesystem. Run by create.sh as
# `unshare -m --propagation private ./setup.sh` from the container directory.
#
# Mounts the base rootfs (lower, read-only) with tmp/rootfs/upper (writable)
# onto mnt/ and writes into it; every write lands in the upper layer, and the
# mount disappears with this private mount namespace when the script exits.
#   /dev         emptied, then null zero full random urandom tty, fd/std*
#                symlinks, ptmx -> pts/ptmx, pts/ and shm/
#   /etc/hostname, /etc/hosts, /etc/resolv.conf
#   vcap         uid and gid moved to user_uid (etc/passwd, etc/group), home chowned
# Never follows a symlink in the rootfs out of mnt/.
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=setup.sh
cd "$(dirname "$0")"
. ./lib/common.sh
load_config

require_own_mount_ns
mount_rootfs
root=$(pwd)/mnt

# Refuses a path inside the container root whose existing part leaves the
# root through a symlink.
inside_root() {
  _ir=$(realpath -m "$root/$1")
  case "$_ir/" in
    "$root"/*) ;;
    *) die "$1 in the rootfs resolves outside the container root ($_ir)" ;;
  esac
}

for d in etc dev; do
  [ ! -L "$root/$d" ] || die "/$d in the rootfs is a symlink"
  [ -d "$root/$d" ] || mkdir -p "$root/$d"
done

# ---- /dev ------------------------------------------------------------------
rm -rf "$root/dev"
mkdir -m 0755 "$root/dev" "$root/dev/pts"
mkdir -m 1777 "$root/dev/shm"
mknod_dev() { # name major minor gid
  mknod -m 0666 "$root/dev/$1" c "$2" "$3" || die "mknod /dev/$1 failed"
  chown "0:$4" "$root/dev/$1"
}
mknod_dev null 1 3 0
mknod_dev zero 1 5 0
mknod_dev full 1 7 0
mknod_dev random 1 8 0
mknod_dev urandom 1 9 0
mknod_dev tty 5 0 5
ln -s /proc/self/fd "$root/dev/fd"
ln -s fd/0 "$root/dev/stdin"
ln -s fd/1 "$root/dev/stdout"
ln -s fd/2 "$root/dev/stderr"
ln -s pts/ptmx "$root/dev/ptmx"

# ---- /etc ------------------------------------------------------------------
# Replace (never write through) whatever is there: a symlink in the rootfs
# must not redirect the write.
write_etc() { # name, content on stdin
  rm -f "$root/etc/$1"
  cat >"$root/etc/$1" || die "writing /etc/$1 failed"
  chmod 0644 "$root/etc/$1"
}

echo "$id" | write_etc hostname
printf '127.0.0.1 localhost\n%s %s\n' "$network_container_ip" "$id" | write_etc hosts

if [ -n "$dns_servers" ]; then
  for server in $dns_servers; do
    echo "nameserver $server"
  done | write_etc resolv.conf
elif [ -f /etc/resolv.conf ]; then
  # The host's resolver list; a loopback resolver on the host is reachable
  # from the container at the host side of its veth.
  sed "s/^\([[:space:]]*nameserver[[:space:]]\{1,\}\)127\.[0-9.]*/\1$network_host_ip/" /etc/resolv.conf |
    write_etc resolv.conf
else
  : | write_etc resolv.conf
fi

# ---- user vcap -> user_uid -------------------------------------------------
passwd=$root/etc/passwd
group=$root/etc/group
[ ! -L "$passwd" ] || die "/etc/passwd in the rootfs is a symlink"
[ ! -L "$group" ] || die "/etc/group in the rootfs is a symlink"
touch "$passwd" "$group"

old_uid=$(awk -F: '$1 == "vcap" { print $3; exit }' "$passwd")
old_gid=$(awk -F: '$1 == "vcap" { print $3; exit }' "$group")
home=$(awk -F: '$1 == "vcap" { print $6; exit }' "$passwd")

if [ -n "$old_gid" ]; then
  sed -i "s/^vcap:\([^:]*\):[^:]*:/vcap:\1:$user_uid:/" "$group" || die "editing /etc/group failed"
else
  echo "vcap:x:$user_uid:" >>"$group"
fi
if [ -n "$old_uid" ]; then
  sed -i "s/^vcap:\([^:]*\):[^:]*:[^:]*:/vcap:\1:$user_uid:$user_uid:/" "$passwd" || die "editing /etc/passwd failed"
else
  home=/home/vcap
  echo "vcap:x:$user_uid:$user_uid:vcap:$home:/bin/sh" >>"$passwd"
fi

case "$home" in
  /*) ;;
  *) die "vcap's home in /etc/passwd is not an absolute path: $home" ;;
esac
inside_root "$home"
if [ ! -e "$root$home" ]; then
  mkdir -p "$root$home"
  chmod 0755 "$root$home"
  chown "$user_uid:$user_uid" "$root$home"
else
  # Only what vcap owned: find -P never follows a symlink, -xdev stays on
  # the overlay.
  [ -z "$old_uid" ] || find "$root$home" -xdev -user "$old_uid" -exec chown -h "$user_uid" {} +
  [ -z "$old_gid" ] || find "$root$home" -xdev -group "$old_gid" -exec chgrp -h "$user_uid" {} +
fi
