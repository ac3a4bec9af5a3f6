#!/bin/sh
# setup.sh: prepares the container's root filesystem. Run by create.sh as
# `unshare -m --propagation private ./setup.sh` from the container directory.
#
# Mounts the base rootfs (lower, read-only) with tmp/rootfs/upper (writable)
# onto mnt/ and writes into it; every write lands in the upper layer, and the
# mount disappears with this private mount namespace when the script exits.
#   /etc/hostname, /etc/hosts, /etc/resolv.conf
#   vcap         uid and gid moved to user_uid (etc/passwd, etc/group), home chowned
# Never follows a symlink in the rootfs out of mnt/: /etc must be a real
# directory; hostname, hosts and resolv.conf are replaced (a symlink there is
# removed, never written through); a symlinked passwd or group, or a vcap
# home that resolves outside mnt/, fails the setup. /dev and /proc are left
# alone: wshd mounts them itself (see helpers/wshd/src/setup.rs).
#
# Speed: text is edited with shell builtins (read/case/printf), not sed or
# awk; each program that is left does several files at once where it can.
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=setup.sh
case "$0" in
  */*) cd -P "${0%/*}" ;;
  *) cd -P . ;;
esac
. ./lib/common.sh
load_config

umask 022
require_own_mount_ns
mount_rootfs
root=$PWD/mnt

# Refuses a path inside the container root whose existing part leaves the
# root through a symlink.
inside_root() {
  # A directory resolves without a program; anything else needs realpath -m.
  _ir=$(cd -P "$root/$1" 2>/dev/null && pwd -P) || _ir=$(realpath -m "$root/$1")
  case "$_ir/" in
    "$root"/*) ;;
    *) die "$1 in the rootfs resolves outside the container root ($_ir)" ;;
  esac
}

[ ! -L "$root/etc" ] || die "/etc in the rootfs is a symlink"
[ -d "$root/etc" ] || mkdir -p "$root/etc"

# ---- /etc ------------------------------------------------------------------
# Replace (never write through) whatever is there: a symlink in the rootfs
# must not redirect the write. New files get 0644 from the umask.
rm -f "$root/etc/hostname" "$root/etc/hosts" "$root/etc/resolv.conf"

echo "$id" >"$root/etc/hostname" || die "writing /etc/hostname failed"
printf '127.0.0.1 localhost\n%s %s\n' "$network_container_ip" "$id" >"$root/etc/hosts" ||
  die "writing /etc/hosts failed"

# The host's resolver list; a nameserver on the host's loopback (127.x) is
# reachable from the container at the host side of its veth, so it is
# replaced by network_host_ip (the rest of each line is kept as it is).
host_resolv() {
  while IFS= read -r _l || [ -n "$_l" ]; do
    _lead=${_l%%[![:space:]]*}
    _rest=${_l#"$_lead"}
    case "$_rest" in
      nameserver[[:space:]]*127.*)
        _after=${_rest#nameserver}
        _ws=${_after%%[![:space:]]*}
        _addr=${_after#"$_ws"}
        case "$_addr" in
          127.*)
            _tail=${_addr#127.}
            _num=${_tail%%[!0-9.]*}
            _l="${_lead}nameserver$_ws$network_host_ip${_tail#"$_num"}"
            ;;
        esac
        ;;
    esac
    printf '%s\n' "$_l"
  done </etc/resolv.conf
}

if [ -n "$dns_servers" ]; then
  for server in $dns_servers; do
    echo "nameserver $server"
  done >"$root/etc/resolv.conf"
elif [ -f /etc/resolv.conf ]; then
  host_resolv >"$root/etc/resolv.conf"
else
  : >"$root/etc/resolv.conf"
fi || die "writing /etc/resolv.conf failed"

# ---- user vcap -> user_uid -------------------------------------------------
passwd=$root/etc/passwd
group=$root/etc/group
[ ! -L "$passwd" ] || die "/etc/passwd in the rootfs is a symlink"
[ ! -L "$group" ] || die "/etc/group in the rootfs is a symlink"
[ -e "$passwd" ] || : >>"$passwd"
[ -e "$group" ] || : >>"$group"

# Rewrites FILE with each "vcap:" line's fields 3 (group) or 3 and 4
# (passwd) set to user_uid, as `sed s/^vcap:\([^:]*\):[^:]*:.../` did: a line
# with too few fields is kept. Sets old_id (field 3) and old_home (field 6)
# from the first such line. Writing through the overlay keeps the file's mode
# and owner.
vcap_edit() { # file group|passwd
  old_id=
  old_home=
  _seen=
  _out=
  while IFS= read -r _l || [ -n "$_l" ]; do
    case "$2:$_l" in
      group:vcap:*:*:* | passwd:vcap:*:*:*:*)
        _f=${_l#vcap:}
        _pw=${_f%%:*}
        _f=${_f#*:}
        [ -n "$_seen" ] || old_id=${_f%%:*}
        _f=${_f#*:}
        if [ "$2" = group ]; then
          _l="vcap:$_pw:$user_uid:$_f"
        else
          _f=${_f#*:}
          if [ -z "$_seen" ]; then
            case "$_f" in
              *:*) _h=${_f#*:} && old_home=${_h%%:*} ;; # gecos:home[:shell]
            esac
          fi
          _l="vcap:$_pw:$user_uid:$user_uid:$_f"
        fi
        _seen=1
        ;;
    esac
    _out="$_out$_l
"
  done <"$1"
  printf '%s' "$_out" >"$1"
}

vcap_edit "$group" group
old_gid=$old_id
if [ -z "$old_gid" ]; then
  echo "vcap:x:$user_uid:" >>"$group"
fi
vcap_edit "$passwd" passwd
old_uid=$old_id
home=$old_home
if [ -z "$old_uid" ]; then
  home=/home/vcap
  echo "vcap:x:$user_uid:$user_uid:vcap:$home:/bin/sh" >>"$passwd"
fi

case "$home" in
  /*) ;;
  *) die "vcap's home in /etc/passwd is not an absolute path: $home" ;;
esac
inside_root "$home"
if [ ! -e "$root$home" ]; then
  mkdir -p -m 0755 "$root$home"
  chown "$user_uid:$user_uid" "$root$home"
else
  # Only what vcap owned; -R never follows a symlink (-P is the default)
  # and -h changes links themselves. Nothing is mounted below mnt/ in this
  # namespace, so -R stays on the overlay.
  [ -z "$old_uid" ] || chown -hR --from="$old_uid" "$user_uid" "$root$home"
  [ -z "$old_gid" ] || chown -hR --from=":$old_gid" ":$user_uid" "$root$home"
fi
