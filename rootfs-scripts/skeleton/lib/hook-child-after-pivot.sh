#!/bin/sh
# hook-child-after-pivot.sh: run INSIDE the container by its init after
# pivot_root (busybox sh and applets only; the old root is still reachable,
# which is how this file and etc/config are found). Mounts /proc (sensitive
# entries masked or read-only), a private devpts (/dev/ptmx -> pts/ptmx) and
# /dev/shm and sets the hostname. (The network inside - lo, the container
# end of the veth, the default route - is set up from the host by net.sh
# setup with PID, run by hook-parent-after-clone.sh.)
set -eu

script=hook-child-after-pivot.sh
cd "${0%/*}/.."
. ./lib/common.sh
load_config

# (Busybox applets are separate processes here, each ~1-2 ms: steps that
# are already done by setup.sh are checked with builtins and skipped.)
[ -d /proc ] && [ -d /dev/pts ] && [ -d /dev/shm ] || mkdir -p /proc /dev/pts /dev/shm
mount -t proc -o nosuid,nodev,noexec proc /proc || die "mounting /proc failed"

# Mask what a container must not read or poke (as runc does): files become
# /dev/null, directories an empty read-only tmpfs; sysrq-trigger and (unless
# nested warden is allowed) /proc/sys are read-only. /sys is not mounted.
# Every mount but the read-only remounts goes into one table for one
# `mount -a` (busybox skips a remount of something it just mounted, so
# those stay separate).
fstab=
fstab_add() { # what where type options
  fstab="$fstab$1 $2 $3 $4 0 0
"
}
for f in /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list /proc/timer_stats /proc/sched_debug; do
  [ -e "$f" ] && fstab_add /dev/null "$f" none bind
done
for d in /proc/acpi /proc/scsi; do
  [ -d "$d" ] && fstab_add tmpfs "$d" tmpfs ro,nosuid,nodev,noexec,size=0
done
ro_paths="/proc/sysrq-trigger /proc/bus /proc/fs /proc/irq"
[ "$allow_nested_warden" = true ] || ro_paths="$ro_paths /proc/sys"
ro_mounted=
for p in $ro_paths; do
  [ -e "$p" ] || continue
  fstab_add "$p" "$p" none bind
  ro_mounted="$ro_mounted $p"
done
fstab_add devpts /dev/pts devpts newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec
fstab_add tmpfs /dev/shm tmpfs nosuid,nodev,mode=1777
# (/dev/stdin works now: /dev/fd -> /proc/self/fd.)
mount -a -T /dev/stdin <<EOF || die "mounting the /proc masks, /dev/pts and /dev/shm failed (see above)"
$fstab
EOF

# The hostname goes through /proc while /proc/sys is still writable (the
# same sethostname(2) as `hostname`, without a process).
echo "$id" >/proc/sys/kernel/hostname || die "setting hostname $id failed"

for p in $ro_mounted; do
  mount -o remount,bind,ro "$p" || die "making $p read-only failed"
done
[ -L /dev/ptmx ] || ln -sf pts/ptmx /dev/ptmx
