#!/bin/sh
# clear.sh: removes every host resource of one server (prefix P).
#
# env: prefix      resource prefix P ([a-z0-9]{1,6})
#      depot_path  the server's container depot
#
#   1. destroy.sh for every directory in depot_path (except tmp/), and the
#      disk image templates create.sh keeps there (.disk-template-*.img)
#   2. every veth named P-<n>-0 or P-<n>-1 and ifb device P-<n>-2 left on the host
#   3. the nft table `ip warden-P`
#   4. the parent cgroups warden-P (and anything left below them)
# Only names carrying the prefix are touched. Each failure prints one line;
# the exit status is 1 if anything could not be removed.
#
# Left in place on purpose: the sysctl net.ipv4.ip_forward=1 that setup.sh
# sets (host-wide; other servers, containers or the host's own routing may
# rely on it: reset it by hand if nothing does), the depot directory itself
# and its lock file .warden.lock, and /run/warden-rs/prefix-P.lock (empty
# of meaning once no process holds its flock).
# `warden clear` holds the server's ownership locks while this runs, so it
# never runs beside a live server of the same depot or prefix.
set -eu
[ -z "${DEBUG:-}" ] || set -x

script=clear.sh
here=$(cd "$(dirname "$0")" && pwd)
. "$here/skeleton/lib/common.sh"

prefix=${prefix:-}
depot_path=${depot_path:-}
is_prefix "$prefix" || die "bad prefix (want [a-z0-9]{1,6}): $prefix"
case "$depot_path" in
  /*) ;;
  *) die "depot_path must be an absolute path: $depot_path" ;;
esac
[ -d "$depot_path" ] || die "depot_path does not exist: $depot_path"

failed=0

for dir in "$depot_path"/*; do
  [ -d "$dir" ] && [ ! -L "$dir" ] || continue
  [ "${dir##*/}" != tmp ] || continue
  "$here/destroy.sh" "$dir" || failed=1
done

# The disk image templates create.sh made (not containers: dot files).
rm -f "$depot_path"/.disk-template-*.img "$depot_path"/.disk-template-*.img.[0-9]* || failed=1

for link in $( (ip -o link show type veth; ip -o link show type ifb) 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
  case "$link" in
    "$prefix"-*-[012]) ;;
    *) continue ;;
  esac
  n=${link#"$prefix"-}
  n=${n%-[012]}
  is_uint "$n" || continue
  ip link del "$link" 2>/dev/null || ! ip link show dev "$link" >/dev/null 2>&1 ||
    { warn "removing interface $link failed"; failed=1; }
done

if nft_has_table; then
  nft delete table ip "$(nft_table)" || { warn "removing nft table ip $(nft_table) failed"; failed=1; }
fi

for dir in $(cgroup_dirs "" | awk '{ print $2 }'); do
  cgroup_remove "$dir" || { warn "removing cgroup $dir failed (busy)"; failed=1; }
done

exit "$failed"
