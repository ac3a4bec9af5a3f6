#!/bin/sh
# hook-child-after-pivot.sh: run INSIDE the container by its init after
# pivot_root (busybox sh and applets only; the old root is still reachable,
# which is how this file and etc/config are found). Mounts /proc (sensitive
# entries masked or read-only), a private devpts (/dev/ptmx -> pts/ptmx) and
# /dev/shm, sets the hostname, and brings up lo and the container end of the
# veth with its address, mtu and the default route via the host end.
set -eu

script=hook-child-after-pivot.sh
cd "$(dirname "$0")/.."
. ./lib/common.sh
load_config

mkdir -p /proc /dev/pts /dev/shm
mount -t proc -o nosuid,nodev,noexec proc /proc || die "mounting /proc failed"

# Mask what a container must not read or poke (as runc does): files become
# /dev/null, directories an empty read-only tmpfs; sysrq-trigger and (unless
# nested warden is allowed) /proc/sys are read-only. /sys is not mounted.
for f in /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list /proc/timer_stats /proc/sched_debug; do
  [ -e "$f" ] || continue
  mount --bind /dev/null "$f" || die "masking $f failed"
done
for d in /proc/acpi /proc/scsi; do
  [ -d "$d" ] || continue
  mount -t tmpfs -o ro,nosuid,nodev,noexec,size=0 tmpfs "$d" || die "masking $d failed"
done
ro_paths="/proc/sysrq-trigger /proc/bus /proc/fs /proc/irq"
[ "$allow_nested_warden" = true ] || ro_paths="$ro_paths /proc/sys"
for p in $ro_paths; do
  [ -e "$p" ] || continue
  mount --bind "$p" "$p" && mount -o remount,bind,ro "$p" || die "making $p read-only failed"
done
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts /dev/pts ||
  die "mounting /dev/pts failed"
ln -sf pts/ptmx /dev/ptmx
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /dev/shm || die "mounting /dev/shm failed"

hostname "$id" || die "setting hostname $id failed"

ip link set lo up || die "bringing up lo failed"
ip link set "$network_container_iface" mtu "$container_iface_mtu" ||
  die "setting mtu $container_iface_mtu on $network_container_iface failed"
ip addr add "$network_container_ip/$network_prefix_len" dev "$network_container_iface" ||
  die "adding $network_container_ip/$network_prefix_len to $network_container_iface failed"
ip link set "$network_container_iface" up || die "bringing up $network_container_iface failed"
ip route add default via "$network_host_ip" dev "$network_container_iface" ||
  die "adding default route via $network_host_ip failed"
